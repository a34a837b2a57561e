"""Bastion with one defence switched off, one variant per weakness: the checks of the
audit must fail on them. Built here, in the tests, from a running ``create_app``: a
component of its services replaced, or the ASGI app wrapped. None of this is reachable
from any setting of the product.

Each variant names the checks that must fail on it (``VARIANTS[name].fails``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import jwt
import pytest
from fastapi import Depends, Request

from bastion.api.deps import Principal, admin_user, current_user
from bastion.api.routes import auth as auth_routes
from bastion.app import BastionApp
from bastion.db import orders as orders_db
from bastion.db import users as users_db
from bastion.security.exceptions import InvalidCredentials, InvalidToken
from bastion.security.guard import AttemptGuard, AttemptRefused
from bastion.security.limits import Rate
from bastion.security.passwords import PasswordHasher

Asgi = Any
Build = Callable[[BastionApp, pytest.MonkeyPatch], Asgi]


@dataclass(frozen=True)
class Variant:
    """``settings`` overrides, then ``build(app, monkeypatch)`` returns the ASGI app to
    audit (a monkeypatched module function is restored when the test ends)."""

    fails: tuple[str, ...]
    build: Callable[[BastionApp, pytest.MonkeyPatch], Asgi] = lambda app, _: app
    settings: dict[str, Any] = field(default_factory=dict)


def rewrite_response_headers(
    asgi: Asgi,
    edit: Callable[[dict[str, Any], list[tuple[bytes, bytes]]], list[tuple[bytes, bytes]]],
) -> Asgi:
    """``asgi`` with ``edit(scope, headers)`` applied to every response's headers."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await asgi(scope, receive, send)
            return

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": edit(scope, list(message["headers"]))}
            await send(message)

        await asgi(scope, receive, sending)

    return app


def rewrite_json(
    asgi: Asgi,
    method: str,
    path: str,
    *,
    request: Callable[[Any], Any] = lambda body: body,
    response: Callable[[Any, Any], Awaitable[Any]] | None = None,
) -> Asgi:
    """``asgi`` with the JSON body of requests to ``method path`` passed through
    ``request(body)``, and of their responses through ``await response(sent, body)``
    (``sent``: the body as the client sent it)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != method or scope["path"] != path:
            await asgi(scope, receive, send)
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            sent = json.loads(raw) if raw else None
        except ValueError:
            sent = None
        forwarded = json.dumps(request(sent)).encode() if sent is not None else raw
        delivered = False

        async def receiving() -> dict[str, Any]:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": forwarded, "more_body": False}

        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def sending(message: dict[str, Any]) -> None:
            if response is None:
                await send(message)
            elif message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    body = b"".join(chunks)
                    with contextlib.suppress(ValueError):
                        body = json.dumps(await response(sent, json.loads(body))).encode()
                    headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
                    headers.append((b"content-length", str(len(body)).encode()))
                    await send({**start, "headers": headers})
                    await send({"type": "http.response.body", "body": body})

        await asgi(scope, receiving, sending)

    return app


class _Codec:
    """Delegates to a real token codec; subclasses weaken :meth:`verify`."""

    def __init__(self, real: Any, other: Any = None) -> None:
        self.real, self.other, self.config = real, other, real.config

    def issue(self, *args: Any, **kwargs: Any) -> Any:
        return self.real.issue(*args, **kwargs)

    def verify(self, token: str) -> dict[str, Any]:
        return self.real.verify(token)  # type: ignore[no-any-return]


class AcceptsUnsigned(_Codec):
    """The classic bug: the algorithm is read from the token, and ``none`` is one."""

    def verify(self, token: str) -> dict[str, Any]:
        try:
            alg = str(jwt.get_unverified_header(token).get("alg"))
        except jwt.PyJWTError:
            raise InvalidToken("malformed") from None
        if alg.lower() == "none":
            return dict(jwt.decode(token, options={"verify_signature": False}))
        return super().verify(token)


class AcceptsEitherType(_Codec):
    """One verifier for both kinds of token."""

    def verify(self, token: str) -> dict[str, Any]:
        try:
            return super().verify(token)
        except InvalidToken:
            return self.other.verify(token)  # type: ignore[no-any-return]


def _replace_access(kind: type[_Codec]) -> Build:
    def build(app: BastionApp, _: pytest.MonkeyPatch) -> Asgi:
        services = app.services
        services.access = kind(services.access, services.refresh)  # type: ignore[assignment]
        return app

    return build


def _drop_cookie_attribute(attribute: bytes) -> Build:
    def edit(
        scope: dict[str, Any], headers: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        return [
            (k, v.replace(b"; " + attribute, b"") if k == b"set-cookie" else v) for k, v in headers
        ]

    return lambda app, _: rewrite_response_headers(app, edit)


def _cacheable_tokens(app: BastionApp, _: pytest.MonkeyPatch) -> Asgi:
    def edit(
        scope: dict[str, Any], headers: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        if not scope["path"].startswith("/api/auth/"):
            return headers
        return [(k, v) for k, v in headers if k not in (b"cache-control", b"pragma")]

    return rewrite_response_headers(app, edit)


# -- sessions --------------------------------------------------------------------------


def _rotation_ignores_the_old_token(app: BastionApp, monkeypatch: pytest.MonkeyPatch) -> Asgi:
    """Rotation swaps in the new token whatever token was presented: a used one works."""
    rows = app.services.sessions.store
    real = rows.rotate

    async def rotate(*, session_id: str, old_token_id: str, **kwargs: Any) -> Any:
        row = await rows.get(session_id)
        current = row.token_id if row is not None else old_token_id
        return await real(session_id=session_id, old_token_id=current, **kwargs)

    monkeypatch.setattr(rows, "rotate", rotate)
    return app


def _rotation_reads_then_writes(app: BastionApp, monkeypatch: pytest.MonkeyPatch) -> Asgi:
    """Rotation checks the current token, then writes: concurrent refreshes all pass."""
    rows = app.services.sessions.store
    real = rows.rotate

    async def rotate(*, session_id: str, old_token_id: str, **kwargs: Any) -> Any:
        row = await rows.get(session_id)
        if row is None or row.token_id != old_token_id or row.revoked_at is not None:
            return None
        await asyncio.sleep(0.05)  # the window every read-then-write has
        return await real(session_id=session_id, old_token_id=row.token_id, **kwargs) or row

    monkeypatch.setattr(rows, "rotate", rotate)
    return app


def _reuse_not_detected(app: BastionApp, monkeypatch: pytest.MonkeyPatch) -> Asgi:
    """A reused refresh token is refused, but nothing is revoked."""
    sessions = app.services.sessions

    async def end(*args: Any, **kwargs: Any) -> bool:
        return False

    async def end_all(*args: Any, **kwargs: Any) -> int:
        return 0

    monkeypatch.setattr(sessions, "end", end)
    monkeypatch.setattr(sessions, "end_all", end_all)
    return app


def _logout_ends_every_session(app: BastionApp, monkeypatch: pytest.MonkeyPatch) -> Asgi:
    """Logout signs the user out everywhere: one device's logout ends the others'."""
    sessions = app.services.sessions

    async def end(session_id: str, *, user_id: str, reason: str = "logout") -> bool:
        return await sessions.end_all(user_id, reason=reason) > 0

    monkeypatch.setattr(sessions, "end", end)
    return app


def _logout_keeps_the_session(app: BastionApp, monkeypatch: pytest.MonkeyPatch) -> Asgi:
    """Logout only clears the cookie: the session, and its refresh token, live on."""

    async def end(*args: Any, **kwargs: Any) -> bool:
        return True

    monkeypatch.setattr(app.services.sessions, "end", end)
    return app


def _access_tokens_outlive_sessions(app: BastionApp, _: pytest.MonkeyPatch) -> Asgi:
    """Access tokens are checked for their signature and expiry only (stateless JWTs):
    ending a session leaves them working until they expire."""
    services = app.services

    async def stateless_user(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        try:
            claims = services.access.verify(header.removeprefix("Bearer "))
        except InvalidToken:
            raise
        return Principal(user_id=claims["sub"], session_id=claims["sid"], token=claims)

    app.fastapi.dependency_overrides[current_user] = stateless_user
    return app


# -- headers and errors ------------------------------------------------------------------


def _express_headers(app: BastionApp, _: pytest.MonkeyPatch) -> Asgi:
    """No HSTS, and the framework named, as Express sends by default."""

    def edit(
        scope: dict[str, Any], headers: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        kept = [(k, v) for k, v in headers if k != b"strict-transport-security"]
        return [*kept, (b"x-powered-by", b"Express")]

    return rewrite_response_headers(app, edit)


def _reused_nonce(app: BastionApp, _: pytest.MonkeyPatch) -> Asgi:
    """The CSP nonce is a constant (one per process, say): it protects nothing."""
    import re

    def edit(
        scope: dict[str, Any], headers: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        return [
            (k, re.sub(rb"'nonce-[^']+'", b"'nonce-c3RhdGljbm9uY2UxMjM0NQ'", v))
            if k == b"content-security-policy"
            else (k, v)
            for k, v in headers
        ]

    return rewrite_response_headers(app, edit)


def _plain_json_errors(app: BastionApp, _: pytest.MonkeyPatch) -> Asgi:
    """Errors as application/json (a framework's default), not problem details."""

    def edit(
        scope: dict[str, Any], headers: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        return [
            (k, b"application/json" if v == b"application/problem+json" else v) for k, v in headers
        ]

    return rewrite_response_headers(app, edit)


# -- authorisation ---------------------------------------------------------------------


def _any_owner(app: BastionApp, monkeypatch: pytest.MonkeyPatch) -> Asgi:
    """Orders are looked up by id alone: anyone with an id reads and cancels it (BOLA)."""
    real_get, real_cancel = orders_db.get_order, orders_db.cancel_order

    async def owner_of(db: Any, order_id: str, user_id: str) -> str:
        return await orders_db.order_owner(db, order_id=order_id) or user_id

    async def get_order(db: Any, *, order_id: str, user_id: str) -> Any:
        return await real_get(db, order_id=order_id, user_id=await owner_of(db, order_id, user_id))

    async def cancel_order(db: Any, *, order_id: str, user_id: str) -> Any:
        owner = await owner_of(db, order_id, user_id)
        return await real_cancel(db, order_id=order_id, user_id=owner)

    monkeypatch.setattr(orders_db, "get_order", get_order)
    monkeypatch.setattr(orders_db, "cancel_order", cancel_order)
    return app


def _hash_in_me(app: BastionApp, _: pytest.MonkeyPatch) -> Asgi:
    """The user record is serialised as stored: the password hash goes out with it."""

    async def add(sent: Any, body: Any) -> Any:
        return {**body, "passwordHash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"}

    return rewrite_json(app, "GET", "/api/users/me", response=add)


PRIVILEGED = ("role", "isAdmin", "admin", "roles", "id", "userId", "emailVerified")


def _role_from_the_body(app: BastionApp, _: pytest.MonkeyPatch) -> Asgi:
    """``Object.assign(user, req.body)``: a role in a profile update is stored."""
    db = app.services.db

    def strip(body: Any) -> Any:
        return {k: v for k, v in body.items() if k not in PRIVILEGED}

    async def store_role(sent: Any, body: Any) -> Any:
        if isinstance(sent, dict) and sent.get("role") and isinstance(body, dict) and "id" in body:
            await db.execute("UPDATE users SET role = $2 WHERE id = $1", body["id"], sent["role"])
            body = {**body, "role": sent["role"]}
        return body

    return rewrite_json(app, "PATCH", "/api/users/me", request=strip, response=store_role)


def _no_role_check(app: BastionApp, _: pytest.MonkeyPatch) -> Asgi:
    """Admin routes check that the caller is signed in, not that they are an admin."""

    async def any_user(principal: Principal = Depends(current_user)) -> Principal:  # noqa: B008
        return principal

    app.fastapi.dependency_overrides[admin_user] = any_user
    return app


# -- input -------------------------------------------------------------------------------


def _string_built_sql(app: BastionApp, monkeypatch: pytest.MonkeyPatch) -> Asgi:
    """The login's lookup builds its SQL from the email: a quote breaks the statement."""

    async def get_user_by_email(db: Any, *, email: str) -> Any:
        where = f"email = '{email}'"  # the flaw this variant has
        columns = "id, email, name, role, flagged, created_at, password_hash, password_changed_at"
        return await db.fetchrow(f"SELECT {columns} FROM users WHERE {where}")  # noqa: S608

    monkeypatch.setattr(users_db, "get_user_by_email", get_user_by_email)
    return app


def _coerced_quantities(app: BastionApp, _: pytest.MonkeyPatch) -> Asgi:
    """Lax validation: a quantity of "1", 1.5 or true is taken as the integer 1."""

    def coerce(body: Any) -> Any:
        for item in body.get("items", []) if isinstance(body, dict) else []:
            if isinstance(item, dict) and isinstance(item.get("quantity"), str | float | bool):
                with contextlib.suppress(ValueError):
                    item["quantity"] = int(item["quantity"])
        return body

    return rewrite_json(app, "POST", "/api/orders", request=coerce)


PRODUCTION = {
    "env": "production",
    "access_secret": "audit-variant-access-secret-" + "a" * 20,
    "refresh_secret": "audit-variant-refresh-secret-" + "r" * 20,
}


# -- accounts ------------------------------------------------------------------------


def _unknown_emails_skip_the_hash(app: BastionApp, monkeypatch: pytest.MonkeyPatch) -> Asgi:
    """No dummy hash: an unknown email is refused at once, a known one after a hash."""
    real = PasswordHasher.verify

    async def verify(
        self: PasswordHasher, stored_hash: str | None, *args: Any, **kwargs: Any
    ) -> bool:
        if stored_hash is None:
            raise InvalidCredentials("unknown account")
        return await real(self, stored_hash, *args, **kwargs)

    monkeypatch.setattr(PasswordHasher, "verify", verify)
    return app


def _no_password_list(app: BastionApp, monkeypatch: pytest.MonkeyPatch) -> Asgi:
    """Only the length is checked: common passwords of 12 characters register."""

    async def problems(self: PasswordHasher, password: str, **kwargs: Any) -> list[str]:
        return []

    monkeypatch.setattr(PasswordHasher, "problems", problems)
    return app


# The production cost of Argon2id: the time an unknown email saves is measurable.
REAL_HASH = {"argon2_memory_kib": 19456, "argon2_time_cost": 2}


# -- rate limits -----------------------------------------------------------------------


def _no_retry_after(app: BastionApp, _: pytest.MonkeyPatch) -> Asgi:
    def edit(
        scope: dict[str, Any], headers: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        return [(k, v) for k, v in headers if k != b"retry-after"]

    return rewrite_response_headers(app, edit)


class SuccessesCount(AttemptGuard):
    """A success gives nothing back: it counts toward the client's and the account's
    failure budgets (express-rate-limit without skipSuccessfulRequests)."""

    async def succeeded(self, reservation: Any) -> None:
        return None


class ReadThenWrite(AttemptGuard):
    """The limit is checked, then counted, with an await between: a burst reads the
    same count and every attempt of it passes."""

    async def reserve(
        self, *, ip: str, account: str | None = None, device: str | None = None
    ) -> Any:
        per_ip = self.config.per_ip
        seen = await self.store.peek(self.ip_key(ip), limit=per_ip.count)
        if not seen.allowed:
            raise AttemptRefused("auth limit", retry_after=1, ip_hit=seen)
        await asyncio.sleep(0.05)
        loose = replace(self.config, per_ip=Rate(10**9, per_ip.window))
        return await AttemptGuard(self.store, loose).reserve(ip=ip, account=account, device=device)


def _guard(kind: type[AttemptGuard]) -> Build:
    def build(app: BastionApp, _: pytest.MonkeyPatch) -> Asgi:
        guard = app.services.guard
        app.services.guard = kind(guard.store, guard.config, guard.observer)
        return app

    return build


UNLIMITED = "1000000/hour"


# -- lockout ---------------------------------------------------------------------------


def _raw_emails(app: BastionApp, monkeypatch: pytest.MonkeyPatch) -> Asgi:
    """Logins compare the email as typed: each spelling has a lockout count of its own."""
    monkeypatch.setattr(auth_routes, "normalise_email", lambda email: email)
    return app


def _no_device_cookies(app: BastionApp, monkeypatch: pytest.MonkeyPatch) -> Asgi:
    """No device cookies: a locked account is locked for its owner's browser too."""
    monkeypatch.setattr(auth_routes, "_device_for", lambda *args: None)
    return app


VARIANTS: dict[str, Variant] = {
    "alg-none-accepted": Variant(
        fails=("tokens.algorithm",), build=_replace_access(AcceptsUnsigned)
    ),
    "common-secret": Variant(
        fails=("tokens.algorithm",),
        settings={
            "access_secret": "a-string-secret-at-least-256-bits-long",  # jwt.io's example
            "refresh_secret": "another-secret-of-at-least-32-bytes-x",
        },
    ),
    "refresh-cookie-readable-by-scripts": Variant(
        fails=("tokens.storage",), build=_drop_cookie_attribute(b"HttpOnly")
    ),
    "day-long-access-tokens": Variant(fails=("tokens.lifetime",), settings={"access_ttl": 86400}),
    "token-types-interchangeable": Variant(
        fails=("tokens.type-separation",), build=_replace_access(AcceptsEitherType)
    ),
    "cacheable-token-responses": Variant(fails=("tokens.no-store",), build=_cacheable_tokens),
    "used-refresh-tokens-work": Variant(
        fails=("refresh.rotation",), build=_rotation_ignores_the_old_token
    ),
    "refresh-reuse-not-detected": Variant(fails=("refresh.rotation",), build=_reuse_not_detected),
    "rotation-read-then-write": Variant(fails=("refresh.race",), build=_rotation_reads_then_writes),
    "logout-ends-every-session": Variant(
        fails=("refresh.sessions-independent",), build=_logout_ends_every_session
    ),
    "logout-keeps-the-session": Variant(
        fails=("sessions.logout",), build=_logout_keeps_the_session
    ),
    "express-headers": Variant(fails=("headers.security",), build=_express_headers),
    "constant-csp-nonce": Variant(fails=("headers.security",), build=_reused_nonce),
    "plain-json-errors": Variant(fails=("errors.problem-details",), build=_plain_json_errors),
    "no-global-limit": Variant(
        fails=("ratelimit.global",), settings={"rate_limit_global": UNLIMITED}
    ),
    "429-without-retry-after": Variant(
        fails=("ratelimit.global", "ratelimit.auth"), build=_no_retry_after
    ),
    "no-auth-limit": Variant(fails=("ratelimit.auth",), settings={"rate_limit_auth": UNLIMITED}),
    "successes-count": Variant(
        fails=("ratelimit.auth", "lockout.successes"), build=_guard(SuccessesCount)
    ),
    "no-lockout": Variant(
        fails=("lockout.account", "lockout.normalisation"), settings={"lockout": UNLIMITED}
    ),
    "lockout-by-email-as-typed": Variant(fails=("lockout.normalisation",), build=_raw_emails),
    "no-device-cookies": Variant(fails=("lockout.denial-of-service",), build=_no_device_cookies),
    "racy-auth-limit": Variant(fails=("ratelimit.burst",), build=_guard(ReadThenWrite)),
    "trusts-forwarded-for": Variant(
        fails=("client-ip.spoofing",), settings={"trusted_proxies": "127.0.0.0/8"}
    ),
    "unknown-emails-skip-the-hash": Variant(
        fails=("auth.enumeration",), build=_unknown_emails_skip_the_hash, settings=REAL_HASH
    ),
    "no-common-password-list": Variant(fails=("passwords.policy",), build=_no_password_list),
    "orders-of-anyone": Variant(fails=("authz.object-level",), build=_any_owner),
    "password-hash-in-responses": Variant(fails=("authz.property-level",), build=_hash_in_me),
    "role-from-the-request-body": Variant(
        fails=("authz.mass-assignment",), build=_role_from_the_body
    ),
    "admin-routes-without-role-check": Variant(
        fails=("authz.function-level",), build=_no_role_check
    ),
    "string-built-sql": Variant(fails=("input.injection",), build=_string_built_sql),
    "coerced-quantities": Variant(fails=("input.validation",), build=_coerced_quantities),
    "no-body-limit": Variant(
        fails=("resources.limits",), settings={"max_body_bytes": 64 * 1024 * 1024}
    ),
    # The suite's app runs in development mode, where introspection answers.
    "graphql-introspection-on": Variant(fails=("graphql.limits",)),
    "graphql-without-alias-limit": Variant(
        fails=("graphql.limits",), settings={**PRODUCTION, "graphql_max_aliases": 1000}
    ),
    "stateless-access-tokens": Variant(
        fails=("sessions.logout",), build=_access_tokens_outlive_sessions
    ),
}

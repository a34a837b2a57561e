"""The account flow the three example apps share, on ``bastion.security`` alone.

Register, log in, refresh, log out and "who am I", with the web framework left out: each
example (``starlette_app.py``, ``fastapi_app.py``, ``litestar_app.py``) only turns HTTP
into these calls and the errors they raise into problem JSON (:func:`problem`). Users
live in a dict: a real app keeps them in its database; everything that defends the
accounts is the layer's.

Settings come from the environment (:meth:`Settings.from_env`):

- ``EXAMPLE_SECRET``: the signing secret (at least 32 characters); a random one per
  process when unset, so tokens die with the process.
- ``EXAMPLE_STORE_URL``: ``redis://...`` to share limits, lockouts and revocation
  flags between instances; the in-process store when unset.
- ``EXAMPLE_SESSIONS_URL``: ``sqlite:///path`` or ``postgresql://...`` for the refresh
  sessions; in memory when unset.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from bastion.security import (
    AttemptGuard,
    BastionError,
    BodyTooLarge,
    GuardConfig,
    HasherConfig,
    InvalidCredentials,
    IssuedTokens,
    MemorySessionStore,
    PasswordHasher,
    Rate,
    RateLimited,
    RefreshSessions,
    Secret,
    SecurityError,
    SessionConfig,
    SessionStore,
    SqlSessionStore,
    Store,
    StoreUnavailable,
    TokenCodec,
    TokenConfig,
    Unavailable,
    open_store,
    problem_body,
)

ISSUER = AUDIENCE = "example"


class AppError(Exception):
    """An answer of the app's own (a weak password, a taken email, no bearer token)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Settings:
    """What the example apps read from the environment (:meth:`from_env`); tests build
    their own. The rates and the hasher's cost are the layer's recommended ones."""

    secret: Secret = field(default_factory=lambda: Secret(secrets.token_urlsafe(32)))
    store_url: str | None = None
    sessions_url: str | None = None
    global_rate: Rate = field(default_factory=lambda: Rate(100, 900))
    login_per_ip: Rate = field(default_factory=lambda: Rate(10, 900))
    login_per_account: Rate = field(default_factory=lambda: Rate(5, 900))
    hasher: HasherConfig = field(default_factory=HasherConfig)
    max_body_bytes: int = 10240
    sessions: SessionConfig = field(default_factory=SessionConfig)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        secret = environ.get("EXAMPLE_SECRET")
        if secret is not None and len(secret) < 32:
            raise ValueError("EXAMPLE_SECRET must be at least 32 characters")
        settings = cls(
            store_url=environ.get("EXAMPLE_STORE_URL") or None,
            sessions_url=environ.get("EXAMPLE_SESSIONS_URL") or None,
        )
        return replace(settings, secret=Secret(secret)) if secret else settings


def _derived(secret: Secret, purpose: str) -> Secret:
    # One key per purpose: a token of one kind can never be checked with another's key.
    return Secret(hmac.new(secret.reveal(), purpose.encode(), hashlib.sha256).digest())


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    password_hash: str


def normalise_email(email: str) -> str:
    return email.strip().lower()


class Accounts:
    """The accounts of one app: passwords hashed with Argon2id behind a bounded line,
    guessing held back by the attempt guard, refresh tokens rotated in families."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self._owns_store = store is None
        self.store = store if store is not None else open_store(settings.store_url)
        self.hasher = PasswordHasher(settings.hasher)
        self.guard = AttemptGuard(
            self.store,
            GuardConfig(
                per_ip=settings.login_per_ip,
                per_account=settings.login_per_account,
                key=_derived(settings.secret, "guard").reveal(),
            ),
        )
        ttl = settings.sessions
        self.access = self._codec("access", ttl.access_ttl)
        self.refresh = self._codec("refresh", ttl.refresh_ttl)
        self.users: dict[str, User] = {}
        self.by_id: dict[str, User] = {}
        self._sessions: RefreshSessions | None = None

    def _codec(self, typ: str, ttl: int) -> TokenCodec:
        key = _derived(self.settings.secret, typ)
        return TokenCodec(
            TokenConfig(typ=typ, keys=[key], issuer=ISSUER, audience=AUDIENCE, ttl=ttl)
        )

    @property
    def sessions(self) -> RefreshSessions:
        if self._sessions is None:
            raise RuntimeError("Accounts.running() is not entered (the app's lifespan)")
        return self._sessions

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The app's lifespan: opens the session store, runs the revocation sync, warms
        the hasher up (so the first login is not the one that pays for it)."""
        sql: SqlSessionStore | None = None
        session_store: SessionStore
        if self.settings.sessions_url:
            sql = await SqlSessionStore.open(self.settings.sessions_url)
            await sql.create_schema()
            session_store = sql
        else:
            session_store = MemorySessionStore()
        self._sessions = RefreshSessions(
            session_store,
            self.store,
            access=self.access,
            refresh=self.refresh,
            config=self.settings.sessions,
        )
        await self.hasher.warm_up()
        try:
            async with self._sessions.running():
                yield
        finally:
            self.hasher.close()
            if sql is not None:
                await sql.close()
            if self._owns_store and (aclose := getattr(self.store, "aclose", None)):
                await aclose()

    async def register(self, email: str, password: str, *, ip: str, scope: Any) -> User:
        """A new account. A weak password or a taken email counts as a failed attempt
        against the client's budget: probing for registered emails is guessing too."""
        email = normalise_email(email)
        refused: AppError | None = None
        user: User | None = None
        async with self.guard.attempt(ip=ip, scope=scope) as attempt:
            if problems := await self.hasher.problems(password, context=(email,)):
                refused = AppError(422, "Choose a stronger password: " + "; ".join(problems))
            elif email in self.users:
                refused = AppError(409, "An account with this email exists.")
            else:
                user = User(uuid.uuid4().hex, email, await self.hasher.hash(password))
                if self.users.setdefault(email, user) is not user:  # registered meanwhile
                    refused = AppError(409, "An account with this email exists.")
            if refused is not None:
                attempt.fail(refused.detail)
        if refused is not None or user is None:
            raise refused or AppError(500, "Internal error.")
        self.by_id[user.id] = user
        return user

    async def login(
        self, email: str, password: str, *, ip: str, user_agent: str, scope: Any
    ) -> IssuedTokens:
        """Tokens for the right password. Raises InvalidCredentials (the same for an
        unknown email, in the same time) or AttemptRefused once a budget is spent."""
        email = normalise_email(email)
        async with self.guard.attempt(ip=ip, account=email, scope=scope):
            user = self.users.get(email)
            await self.hasher.verify(user.password_hash if user else None, password)
        assert user is not None  # verify raised otherwise
        return await self.sessions.start(user.id, user_agent=user_agent, ip=ip)

    async def refresh_tokens(self, refresh_token: str, *, ip: str) -> IssuedTokens:
        """New tokens for a refresh token, which is spent. Raises InvalidToken;
        presenting a spent one again (RefreshReused) ends its whole family."""
        return await self.sessions.rotate(refresh_token, ip=ip)

    async def logout(self, refresh_token: str) -> None:
        """Ends the session: its refresh token and its access tokens stop working."""
        await self.sessions.end_by_token(refresh_token)

    async def current_user(self, authorization: str | None) -> User:
        """The user an ``Authorization: Bearer`` access token names, if its session
        is alive. Raises InvalidToken, or AppError(401) without a bearer token."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AppError(401, "An access token is required (Authorization: Bearer).")
        claims = await self.sessions.authenticate(token.strip())
        user = self.by_id.get(claims["sub"])
        if user is None:
            raise AppError(401, "Invalid or expired token.")
        return user


def tokens_body(issued: IssuedTokens) -> dict[str, Any]:
    return {
        "access_token": issued.access_token,
        "refresh_token": issued.refresh_token,
        "token_type": "Bearer",
        "expires_in": issued.access_claims["exp"] - issued.access_claims["iat"],
    }


@dataclass(frozen=True, slots=True)
class Problem:
    status: int
    body: bytes
    headers: dict[str, str]


def problem(exc: Exception) -> Problem:
    """RFC 9457 problem JSON for what the layer (or the app) raised. Token and password
    failures get one opaque answer each: the reason is for the log, not the client."""
    headers: dict[str, str] = {}
    if isinstance(exc, AppError):
        status, detail = exc.status, exc.detail
    elif isinstance(exc, RateLimited | Unavailable):
        status, detail = exc.status, "Too many attempts; try again later."
        if isinstance(exc, Unavailable):
            detail = "The service is busy; try again shortly."
        headers["retry-after"] = str(exc.retry_after)
    elif isinstance(exc, SecurityError):
        status = exc.status
        detail = "Invalid or expired token." if status == 401 else "Request refused."
        if isinstance(exc, InvalidCredentials):
            detail = "Invalid email or password."
    elif isinstance(exc, BodyTooLarge):
        # BodyLimitMiddleware has answered 413 already; this answer is never sent.
        status, detail = 413, "The request body is too large."
    elif isinstance(exc, StoreUnavailable):
        status, detail = 503, "The service is unavailable; try again shortly."
        headers["retry-after"] = "1"
    elif isinstance(exc, BastionError):
        status, detail = 500, "Internal error."
    else:
        raise exc
    return Problem(status, problem_body(status, detail), headers)

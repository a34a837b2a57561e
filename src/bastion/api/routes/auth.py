"""``/api/auth``: register, login, refresh rotation, logout, sessions."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from bastion.api.deps import CurrentUser, Principal, Services, Svc, accounts
from bastion.api.errors import ApiError, json_response, store_down
from bastion.api.openapi import problem_responses
from bastion.api.schemas import (
    LoginRequest,
    Page,
    RegisterRequest,
    SessionOut,
    TokenResponse,
    UserOut,
    normalise_email,
    user_out,
)
from bastion.db import IntegrityConflict, users
from bastion.security import (
    ExpiredToken,
    InvalidCredentials,
    InvalidToken,
    IssuedTokens,
    RefreshRefused,
    RefreshReused,
    StoreUnavailable,
    client_ip,
)
from bastion.usecases.accounts import WeakPassword

router = APIRouter(prefix="/api/auth", tags=["auth"])

REFRESH_COOKIE = "__Secure-refreshToken"
DEVICE_COOKIE = "__Secure-deviceToken"
DEVICE_TTL = 180 * 86400


def _refresh_cookie(value: str, max_age: int) -> str:
    # Written out by hand to keep the contract's exact form (Starlette's would say
    # "SameSite=strict"). Tokens are base64url and dots: nothing to quote.
    return (
        f"{REFRESH_COOKIE}={value}; HttpOnly; Secure; SameSite=Strict; Path=/api/auth;"
        f" Max-Age={max_age}"
    )


# How recent the login behind a session must be for it to end other sessions (ASVS
# V7.5.2: ending sessions needs a fresh authentication, so that a stolen token cannot
# end its victim's other sessions).
REAUTH_WINDOW = 15 * 60
CLEAR_REFRESH = _refresh_cookie("", 0) + "; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _account_digest(email: str) -> str:
    return hashlib.blake2s(email.encode(), digest_size=16).hexdigest()


def _set_refresh_cookie(response: Response, token: str, max_age: int) -> None:
    response.headers.append("set-cookie", _refresh_cookie(token, max_age))


Issued = tuple[str, dict[str, Any]]  # a token and its claims


def _tokens(access: Issued, refresh: Issued) -> Response:
    """The tokens' answer. Their lifetimes are the tokens' own (``exp`` - ``iat``):
    shorter than the settings say when the session ends sooner, so that neither the
    cookie nor the client's idea of the access token outlives the session."""
    (access_token, access_claims), (refresh_token, refresh_claims) = access, refresh
    body = {
        "accessToken": access_token,
        "tokenType": "Bearer",
        "expiresIn": access_claims["exp"] - access_claims["iat"],
    }
    response = json_response(body, headers=NO_STORE)
    _set_refresh_cookie(response, refresh_token, refresh_claims["exp"] - refresh_claims["iat"])
    return response


@router.post("/register", status_code=201, response_model=UserOut, responses=problem_responses(409))
async def register(body: RegisterRequest, request: Request, services: Svc) -> Response:
    try:
        row = await accounts(services).register(
            email=body.email,
            name=body.name,
            password=body.password,
            ip=client_ip(request.scope),
            scope=request.scope,
        )
    except WeakPassword as exc:
        raise ApiError(
            400,
            "The password is not acceptable.",
            errors=[{"pointer": "#/password", "detail": p} for p in exc.problems],
        ) from None
    except IntegrityConflict:
        raise ApiError(
            409,
            "That email cannot be registered.",
            errors=[{"pointer": "#/email", "detail": "is already registered"}],
        ) from None
    except StoreUnavailable:  # the guard cannot count the attempt: it is not made
        raise store_down() from None
    return json_response(user_out(row), status=201, headers={"Location": "/api/users/me"})


def _device_for(services: Services, request: Request, email: str) -> str | None:
    """The device id of a valid device cookie issued for this account, else None."""
    token = request.cookies.get(DEVICE_COOKIE)
    if not token:
        return None
    try:
        claims = services.device.verify(token)
    except InvalidToken:
        return None
    if claims.get("acct") != _account_digest(email):
        return None
    return str(claims["jti"])


@router.post("/login", response_model=TokenResponse, responses=problem_responses(401))
async def login(body: LoginRequest, request: Request, services: Svc) -> Response:
    email = normalise_email(body.email)

    async def start(user_id: str) -> tuple[Issued, Issued]:
        # The browser's old session ends in the same round as the new one starts.
        issued, _ = await asyncio.gather(
            services_start(services, request, user_id), _end_replaced_session(services, request)
        )
        return issued

    try:
        row, (access, refresh) = await accounts(services).log_in(
            email=email,
            password=body.password,
            ip=client_ip(request.scope),
            scope=request.scope,
            device=_device_for(services, request, email),
            start=start,
        )
    except InvalidCredentials:
        raise ApiError(
            401, "The email or password is wrong.", headers={"WWW-Authenticate": "Bearer"}
        ) from None
    except StoreUnavailable:  # the guard cannot count the attempt: it is not made
        raise store_down() from None
    response = _tokens(access, refresh)
    # The device cookie: this browser has signed in to this account before, so the
    # account's lockout will not refuse it (OWASP's device cookies).
    device_token, _ = services.device.issue(row["id"], claims={"acct": _account_digest(email)})
    response.set_cookie(
        DEVICE_COOKIE,
        device_token,
        max_age=DEVICE_TTL,
        path="/api/auth",
        secure=True,
        httponly=True,
        samesite="strict",
    )
    return response


async def _end_replaced_session(services: Services, request: Request) -> None:
    """A login ends the session this browser had (ASVS V7.2.4): the new refresh cookie
    takes the old one's place, so the old session could only live on in a copy of its
    cookie taken before. Nothing to do without a valid refresh cookie."""
    token = request.cookies.get(REFRESH_COOKIE)
    if not token:
        return
    try:
        claims = services.refresh.verify(token)
    except InvalidToken:
        return
    if isinstance(claims.get("sid"), str) and await services.sessions.end(
        claims["sid"], user_id=claims["sub"], reason="replaced by a login"
    ):
        _session_ended(services, request, claims["sub"], "replaced by a login")


def _session_ended(services: Services, request: Request, user_id: str, how: str) -> None:
    services.events.emit("auth.session.ended", request.scope, user_id=user_id, reason=how)


async def services_start(
    services: Services, request: Request, user_id: str
) -> tuple[Issued, Issued]:
    issued = await services.sessions.start(
        user_id, user_agent=request.headers.get("user-agent", ""), ip=client_ip(request.scope)
    )
    return _pairs(issued)


def _pairs(issued: IssuedTokens) -> tuple[Issued, Issued]:
    return (issued.access_token, issued.access_claims), (
        issued.refresh_token,
        issued.refresh_claims,
    )


def _refuse_cross_origin(services: Services, request: Request) -> None:
    """Beside ``SameSite=Strict``: a cookie-authenticated call whose ``Origin`` is not
    the configured public origin gets 403, whatever cookie it carries (the rule:
    :class:`bastion.security.origins.OriginPolicy`; ``Host`` plays no part)."""
    if not services.origins.allows(request.headers.get("origin")):
        services.events.emit("authz.denied", request.scope, reason="cross-origin cookie call")
        raise ApiError(403, "Cross-origin requests are not allowed here.")


def _clear(response: Response) -> Response:
    response.headers.append("set-cookie", CLEAR_REFRESH)
    return response


def _refresh_refused(
    services: Services, request: Request, reason: str | None, user_id: str | None = None
) -> ApiError:
    """The 401 of a refresh; an ``auth.token.rejected`` event unless ``reason`` is None."""
    if reason is not None:
        services.events.emit("auth.token.rejected", request.scope, user_id=user_id, reason=reason)
    return ApiError(
        401,
        "The session has ended; sign in again.",
        headers={
            "WWW-Authenticate": "Bearer",
            "Set-Cookie": CLEAR_REFRESH,
        },
    )


@router.post("/refresh", response_model=TokenResponse, responses=problem_responses(401, 403))
async def refresh(request: Request, services: Svc) -> Response:
    _refuse_cross_origin(services, request)
    token = request.cookies.get(REFRESH_COOKIE)
    if not token:
        # No token was presented, so none was rejected: every visitor without a session
        # whose page checks for one lands here. Not an event (it would drown real ones).
        raise _refresh_refused(services, request, None)
    try:
        await services.store.ping()
    except StoreUnavailable:
        raise store_down() from None
    try:
        issued = await services.sessions.rotate(token, ip=client_ip(request.scope))
    except ExpiredToken as exc:
        raise _refresh_refused(services, request, exc.reason, exc.claims["sub"]) from None
    except RefreshReused as exc:
        # A token we signed, for a real session, that is no longer current: its family
        # is ended; so is every other session of the user, who is flagged for review.
        await services.sessions.end_all(exc.user_id, reason=exc.reason)
        await users.set_flagged(services.db, user_id=exc.user_id, flagged=True)
        services.events.emit(
            "auth.refresh.reuse_detected",
            request.scope,
            user_id=exc.user_id,
            reason=f"session {exc.session_id}",
        )
        raise _refresh_refused(
            services, request, "refresh token not current", exc.user_id
        ) from None
    except RefreshRefused as exc:
        raise _refresh_refused(services, request, exc.reason, exc.user_id) from None
    except InvalidToken as exc:
        raise _refresh_refused(services, request, exc.reason) from None
    return _tokens(*_pairs(issued))


@router.post("/logout", status_code=204, responses=problem_responses(403))
async def logout(request: Request, services: Svc) -> Response:
    _refuse_cross_origin(services, request)
    token = request.cookies.get(REFRESH_COOKIE)
    if token:
        try:
            claims = services.refresh.verify(token)
        except InvalidToken:
            claims = None
        if (
            claims is not None
            and isinstance(claims.get("sid"), str)
            and await services.sessions.end(claims["sid"], user_id=claims["sub"], reason="logout")
        ):
            _session_ended(services, request, claims["sub"], "logout")
    return _clear(Response(status_code=204, headers=NO_STORE))


async def _require_recent_login(services: Services, user: Principal) -> None:
    """403 unless the caller's session was started by a login (a password checked) in
    the last :data:`REAUTH_WINDOW` seconds; refreshes do not count."""
    row = await services.sessions.store.get(user.session_id)
    age = datetime.now(UTC) - row.created_at if row is not None else None
    if age is None or age > timedelta(seconds=REAUTH_WINDOW):
        raise ApiError(
            403,
            f"Sign in again to end other sessions: this one signed in more than"
            f" {REAUTH_WINDOW // 60} minutes ago.",
        )


@router.post("/logout-all", status_code=204, responses=problem_responses(403))
async def logout_all(request: Request, user: CurrentUser, services: Svc) -> Response:
    await _require_recent_login(services, user)
    ended = await services.sessions.end_all(user.user_id, reason="logout-all")
    _session_ended(services, request, user.user_id, f"logout-all: {ended} session(s)")
    return _clear(Response(status_code=204, headers=NO_STORE))


@router.get("/sessions", response_model=Page[SessionOut])
async def list_sessions(user: CurrentUser, services: Svc) -> Response:
    items = [
        {
            "id": r.id,
            "createdAt": r.created_at.isoformat().replace("+00:00", "Z"),
            "lastUsedAt": r.last_used_at.isoformat().replace("+00:00", "Z"),
            "expiresAt": r.ends_at.isoformat().replace("+00:00", "Z"),
            "userAgent": r.user_agent,
            "ip": r.ip,
            "current": r.id == user.session_id,
            "authMethods": list(r.amr),
        }
        for r in await services.sessions.list(user.user_id)
    ]
    return json_response({"items": items, "nextCursor": None}, headers=NO_STORE)


@router.delete("/sessions/{session_id}", status_code=204, responses=problem_responses(403, 404))
async def delete_session(
    session_id: uuid.UUID, request: Request, user: CurrentUser, services: Svc
) -> Response:
    sid = str(session_id)
    if sid != user.session_id:  # ending one's own session is a logout
        await _require_recent_login(services, user)
    if not await services.sessions.end(sid, user_id=user.user_id, reason="deleted by user"):
        row = await services.sessions.store.get(sid)
        if row is not None and row.user_id != user.user_id:
            services.events.emit(
                "authz.denied", request.scope, user_id=user.user_id, reason="another user's session"
            )
        raise ApiError(404, "No such session.")
    _session_ended(services, request, user.user_id, "deleted by its user")
    return Response(status_code=204, headers=NO_STORE)

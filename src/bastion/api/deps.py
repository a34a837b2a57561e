"""What routes depend on: the services of the app, the caller, their role."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import Depends, Request

from bastion.api.page_cache import PageCache
from bastion.api.shedding import ReturningLogins
from bastion.config import Settings
from bastion.db import Database
from bastion.security import (
    AttemptGuard,
    InvalidToken,
    OriginPolicy,
    PasswordHasher,
    RefreshSessions,
    RevocationState,
    Secret,
    SecurityEventLog,
    Store,
    TokenCodec,
    VerifiedTokenCache,
    flag_key,
    revocation_flag,
)
from bastion.usecases.accounts import Accounts

if TYPE_CHECKING:
    from bastion.metrics.registry import Metrics

__all__ = [
    "AdminUser",
    "CurrentUser",
    "Principal",
    "Services",
    "accounts",
    "revoked_flag",
]

SID_HINT_KEY = "bastion.sid_hint"


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    store: Store
    hasher: PasswordHasher
    sessions: RefreshSessions
    events: SecurityEventLog
    device: TokenCodec
    guard: AttemptGuard
    catalogue_pages: PageCache = field(default_factory=PageCache)
    verified: VerifiedTokenCache = field(default_factory=VerifiedTokenCache)
    returning: ReturningLogins = field(default_factory=ReturningLogins)
    origins: OriginPolicy = field(default_factory=OriginPolicy)
    metrics: Metrics | None = None  # None when metrics are off (BASTION_METRICS_ADDRESS)
    # BASTION_MFA_SECRET, then BASTION_MFA_SECRET_PREVIOUS: the keys second factors
    # derive theirs from. Empty when unset in production: second factors answer 503.
    mfa_keys: tuple[Secret, ...] = ()
    draining: bool = False  # told to stop (SIGTERM): /readyz answers 503

    # The token codecs belong to the sessions; swapping one here swaps it there.
    @property
    def access(self) -> TokenCodec:
        return self.sessions.access

    @access.setter
    def access(self, codec: TokenCodec) -> None:
        self.sessions.access = codec

    @property
    def refresh(self) -> TokenCodec:
        return self.sessions.refresh

    @refresh.setter
    def refresh(self, codec: TokenCodec) -> None:
        self.sessions.refresh = codec

    @property
    def revocations(self) -> RevocationState:
        return self.sessions.revocations


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    session_id: str
    token: dict[str, Any]


async def get_services(request: Request) -> Services:
    # async on purpose: FastAPI runs a plain def dependency in a thread pool.
    services: Services = request.app.state.services
    return services


Svc = Annotated[Services, Depends(get_services)]


def accounts(services: Services) -> Accounts:
    """The account use cases over the services as they are now."""
    return Accounts(
        db=services.db, hasher=services.hasher, guard=services.guard, events=services.events
    )


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def revoked_flag(scope: Any) -> str | None:
    """The revocation flag to look up with the rate-limit hit, read from the Bearer token
    *before* it is verified: only a hint of where to look, never trusted on its own
    (``current_user`` checks that the verified token names the same session)."""
    for key, value in scope["headers"]:
        if key == b"authorization":
            parts = value.split(b".")
            if len(parts) != 3 or len(parts[1]) > 4096:
                return None
            try:
                payload = orjson.loads(
                    base64.urlsafe_b64decode(parts[1] + b"=" * (-len(parts[1]) % 4))
                )
            except (ValueError, orjson.JSONDecodeError):
                return None
            sid = payload.get("sid") if isinstance(payload, dict) else None
            if isinstance(sid, str) and len(sid) <= 64:
                scope[SID_HINT_KEY] = sid
                return flag_key(sid)
            return None
    return None


async def current_user(request: Request, services: Svc) -> Principal:
    """The verified caller, or :class:`InvalidToken` (401)."""
    token = _bearer(request)
    if token is None:
        raise InvalidToken("missing bearer token")
    claims = services.verified.get(token)
    if claims is None:
        try:
            claims = services.access.verify(token)
        except InvalidToken as exc:
            services.events.emit("auth.token.rejected", request.scope, reason=exc.reason)
            raise
        services.verified.put(token, claims)
    sid = claims.get("sid")
    if not isinstance(sid, str):
        services.events.emit("auth.token.rejected", request.scope, reason="token names no session")
        raise InvalidToken("token names no session")
    scope = request.scope
    flagged = revocation_flag(scope)
    if scope.get(SID_HINT_KEY) == sid and flagged is not None:
        # Looked up by the limiter in its own round trip: no extra one here.
        revoked = await services.sessions.revoked_given(sid, flagged=flagged)
    else:  # the limiter did not look it up (store down, or not under its prefix)
        revoked = await services.sessions.revoked(sid)
    if revoked:
        services.events.emit(
            "auth.token.rejected", scope, user_id=claims["sub"], reason="session revoked"
        )
        raise InvalidToken("session revoked")
    return Principal(user_id=claims["sub"], session_id=sid, token=claims)


CurrentUser = Annotated[Principal, Depends(current_user)]


async def admin_user(request: Request, principal: CurrentUser, services: Svc) -> Principal:
    from bastion.api.errors import ApiError
    from bastion.db import users

    row = await users.get_user(services.db, user_id=principal.user_id)
    if row is None or row["role"] != "admin":
        services.events.emit(
            "authz.denied", request.scope, user_id=principal.user_id, reason="admin role required"
        )
        raise ApiError(403, "This needs the admin role.")
    return principal


AdminUser = Annotated[Principal, Depends(admin_user)]

"""What routes depend on: the services of the app, the caller, their role."""

from __future__ import annotations

import base64
import time
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
    SecurityEventLog,
    Store,
    TokenCodec,
    VerifiedTokenCache,
    revocation_flag,
)
from bastion.usecases.accounts import Accounts

if TYPE_CHECKING:
    from bastion.metrics.registry import Metrics

__all__ = [
    "AdminUser",
    "CurrentUser",
    "Principal",
    "RevocationState",
    "Services",
    "accounts",
    "revoked_flag",
]

SID_HINT_KEY = "bastion.sid_hint"


class RevocationState:
    """Whether this process may take a missing revocation flag to mean "not revoked".

    False until the first sync of the flags from the database, and again from the
    moment a flag may be missing (a write failed, the store was unreachable) until the
    next sync (``bastion.api.sessions``); meanwhile sessions are read from the database.
    ``checked_at`` (``time.monotonic()``) is when a sync last confirmed the flags.
    """

    __slots__ = ("checked_at", "losses", "synced")

    def __init__(self) -> None:
        self.synced = False
        self.losses = 0
        self.checked_at = time.monotonic()

    def lost(self) -> None:
        """A flag may be missing from the store: trust none until the next sync."""
        self.synced = False
        self.losses += 1


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    store: Store
    hasher: PasswordHasher
    access: TokenCodec
    refresh: TokenCodec
    events: SecurityEventLog
    device: TokenCodec
    guard: AttemptGuard
    catalogue_pages: PageCache = field(default_factory=PageCache)
    verified: VerifiedTokenCache = field(default_factory=VerifiedTokenCache)
    revocations: RevocationState = field(default_factory=RevocationState)
    returning: ReturningLogins = field(default_factory=ReturningLogins)
    origins: OriginPolicy = field(default_factory=OriginPolicy)
    metrics: Metrics | None = None  # None when metrics are off (BASTION_METRICS_ADDRESS)
    draining: bool = False  # told to stop (SIGTERM): /readyz answers 503


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


def revoked_key(session_id: str) -> str:
    return f"revoked:{session_id}"


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
                return revoked_key(sid)
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
        # Looked up by the limiter in its own round trip: no extra one here. A raised
        # flag is always right; a missing one only while the flags are known in sync.
        revoked = flagged or (
            not services.revocations.synced and await _session_ended(services, sid)
        )
    else:  # the limiter did not look it up (store down, or not under its prefix)
        revoked = await _revoked_slow(services, sid)
    if revoked:
        services.events.emit(
            "auth.token.rejected", scope, user_id=claims["sub"], reason="session revoked"
        )
        raise InvalidToken("session revoked")
    return Principal(user_id=claims["sub"], session_id=sid, token=claims)


async def _revoked_slow(services: Services, sid: str) -> bool:
    from bastion.security import StoreUnavailable

    try:
        if await services.store.has_flag(revoked_key(sid)):
            return True
    except StoreUnavailable:
        # Fail closed on the durable record rather than trust a token blindly.
        return await _session_ended(services, sid)
    return not services.revocations.synced and await _session_ended(services, sid)


async def _session_ended(services: Services, sid: str) -> bool:
    """The database's answer: the session is gone or revoked."""
    from bastion.db import sessions

    row = await sessions.get_session(services.db, session_id=sid)
    return row is None or row["revoked_at"] is not None


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

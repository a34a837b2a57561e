"""Starting and ending sessions.

The database row is the truth. A revocation flag in the store (``revoked:<sid>``, kept
as long as an access token of the session can live) makes the end visible at once to
the hot path of every worker and instance: ``current_user`` reads it in the same store
round trip as the global rate limit.

A flag can go missing: the store restarted without persistence, or could not be reached
when the session ended. :func:`revocation_sync` closes that gap. Once a second each
process checks that the store still holds the marker that the last full sync wrote;
when the marker is gone, or this process failed to write a flag, it rewrites every
flag from the database, then the marker. Until that is done the process trusts no
missing flag (``RevocationState.synced`` is false) and reads the session row instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from bastion.api.deps import Services, revoked_key
from bastion.db import DatabaseUnavailable, sessions
from bastion.store import StoreUnavailable
from bastion.tasks import stop

__all__ = [
    "SESSION_ENDED",
    "SYNC_MARKER",
    "Issued",
    "end_session",
    "end_sessions",
    "revocation_sync",
    "session_clock",
    "start_session",
    "sync_revocations",
    "unix",
]

logger = logging.getLogger("bastion.sessions")

SYNC_MARKER = "revoked:synced"
_MARKER_TTL = 86400.0
# Slack for clocks that disagree between the app and the store.
_FLAG_MARGIN = 5


# The reason of the event when a refresh comes after its session's absolute end.
SESSION_ENDED = "session lifetime ended"


def session_clock(services: Services) -> datetime:
    """Now, for sessions: the refresh token codec's clock, so that a session's
    deadlines and its tokens' ``exp`` are read off one clock (tests move it)."""
    return datetime.fromtimestamp(services.refresh.config.clock(), UTC)


def unix(moment: datetime) -> int:
    """A deadline as a token's ``exp``: whole seconds, never later than ``moment``."""
    return int(moment.timestamp())


def _flag_ttl(services: Services) -> int:
    """How long an access token of an ended session can still be presented."""
    return services.settings.access_ttl + _FLAG_MARGIN


Issued = tuple[str, dict[str, Any]]  # a token and its claims


async def start_session(
    services: Services, *, user_id: str, user_agent: str, ip: str
) -> tuple[Issued, Issued]:
    """A new session: its access and refresh tokens, each with its claims. It ends
    ``session_max_age`` from now, a deadline stored with it (a later change of the
    setting moves no session's end); no token of it outlives that."""
    now = session_clock(services)
    # Whole seconds, as a token's ``exp`` is: the row and the tokens name the same end.
    ends_at = datetime.fromtimestamp(unix(now) + services.settings.session_max_age, UTC)
    session_id = str(uuid.uuid4())
    refresh, refresh_claims = services.refresh.issue(
        user_id, claims={"sid": session_id}, not_after=unix(ends_at)
    )
    await sessions.create_session(
        services.db,
        session_id=session_id,
        user_id=user_id,
        token_id=refresh_claims["jti"],
        now=now,
        expires_at=now + timedelta(seconds=services.settings.refresh_ttl),
        ends_at=ends_at,
        user_agent=user_agent,
        ip=ip,
    )
    access = services.access.issue(user_id, claims={"sid": session_id}, not_after=unix(ends_at))
    return access, (refresh, refresh_claims)


async def _flag(services: Services, session_ids: list[str]) -> None:
    for sid in session_ids:
        try:
            await services.store.set_flag(revoked_key(sid), ttl=_flag_ttl(services))
        except StoreUnavailable:
            # The rows are revoked already. This process reads rows until its sync
            # loop has written the flags; other processes learn of it then.
            services.revocations.lost()
            return


async def end_session(services: Services, *, user_id: str, session_id: str, reason: str) -> bool:
    """End one live session of ``user_id``; false if it has none such."""
    row = await sessions.revoke_session(
        services.db, session_id=session_id, user_id=user_id, reason=reason, now=datetime.now(UTC)
    )
    if row is None:
        return False
    await _flag(services, [session_id])
    return True


async def end_sessions(
    services: Services, *, user_id: str, reason: str, keep: str | None = None
) -> int:
    """End every live session of ``user_id`` but ``keep``; how many were ended."""
    rows = await sessions.revoke_all_sessions(
        services.db, user_id=user_id, reason=reason, now=datetime.now(UTC), keep=keep
    )
    await _flag(services, [r["id"] for r in rows])
    return len(rows)


async def sync_revocations(services: Services) -> bool:
    """Make sure the store holds the flag of every session ended within an access
    token's lifetime; true if the flags had to be rewritten. Raises
    :class:`StoreUnavailable` or :class:`DatabaseUnavailable` (then the process stays
    unsynced and keeps reading rows)."""
    state = services.revocations
    if state.synced and await services.store.has_flag(SYNC_MARKER):
        state.checked_at = time.monotonic()
        return False
    losses = state.losses
    state.synced = False
    window = _flag_ttl(services)
    now = datetime.now(UTC)
    rows = await sessions.recently_revoked(services.db, since=now - timedelta(seconds=window))
    for row in rows:
        left = window - (now - row["revoked_at"]).total_seconds()
        if left > 0:
            await services.store.set_flag(revoked_key(row["id"]), ttl=left)
    await services.store.set_flag(SYNC_MARKER, ttl=_MARKER_TTL)
    # A flag that failed to be written meanwhile needs another round.
    if state.losses == losses:
        state.synced = True
        state.checked_at = time.monotonic()
    return True


async def _keep_synced(services: Services, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            if await sync_revocations(services):
                logger.warning("revocation flags were missing from the store: rewritten")
        except (StoreUnavailable, DatabaseUnavailable) as exc:
            # An outage may be a restart that loses flags: trust none until resynced.
            services.revocations.lost()
            logger.warning("revocation sync failed (%s); reading sessions from the db", exc)
        except Exception:
            services.revocations.lost()
            logger.exception("revocation sync failed")


@asynccontextmanager
async def revocation_sync(services: Services, *, interval: float = 1.0) -> AsyncIterator[None]:
    """Sync once, then keep the store's revocation flags in sync while the app runs."""
    with contextlib.suppress(StoreUnavailable, DatabaseUnavailable):
        await sync_revocations(services)
    task = asyncio.create_task(_keep_synced(services, interval), name="revocation sync")
    try:
        yield
    finally:
        await stop(task)

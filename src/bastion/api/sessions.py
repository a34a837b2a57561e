"""Starting and ending sessions: the database row is the truth, the store's revocation
flag makes the end visible to every worker's hot path at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bastion.api.deps import Services, revoked_key
from bastion.db import sessions
from bastion.store import StoreUnavailable

__all__ = ["end_session", "end_sessions", "start_session"]


async def start_session(
    services: Services, *, user_id: str, user_agent: str, ip: str
) -> tuple[str, str, dict[str, Any]]:
    """A new session: ``(access_token, refresh_token, access_claims)``."""
    now = datetime.now(UTC)
    session_id = str(uuid.uuid4())
    refresh, refresh_claims = services.refresh.issue(user_id, claims={"sid": session_id})
    await sessions.create_session(
        services.db,
        session_id=session_id,
        user_id=user_id,
        token_id=refresh_claims["jti"],
        now=now,
        expires_at=now + timedelta(seconds=services.settings.refresh_ttl),
        user_agent=user_agent,
        ip=ip,
    )
    access, claims = services.access.issue(user_id, claims={"sid": session_id})
    return access, refresh, claims


async def _flag(services: Services, session_ids: list[str]) -> None:
    for sid in session_ids:
        try:
            await services.store.set_flag(revoked_key(sid), ttl=services.settings.access_ttl + 5)
        except StoreUnavailable:
            # The row is revoked already; while the store is down, current_user falls
            # back to that row, so the session stays ended.
            return


async def end_session(services: Services, *, user_id: str, session_id: str, reason: str) -> bool:
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
    rows = await sessions.revoke_all_sessions(
        services.db, user_id=user_id, reason=reason, now=datetime.now(UTC), keep=keep
    )
    await _flag(services, [r["id"] for r in rows])
    return len(rows)

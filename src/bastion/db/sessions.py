"""Refresh-token sessions (token families), rotated by compare-and-set."""

from __future__ import annotations

from datetime import datetime

from bastion.db.database import Connection, Row

__all__ = [
    "create_session",
    "get_session",
    "list_sessions",
    "recently_revoked",
    "revoke_all_sessions",
    "revoke_session",
    "rotate_session",
]

SESSION_COLUMNS = (
    "id, user_id, token_id, generation, created_at, last_used_at, expires_at, ends_at,"
    " revoked_at, user_agent, ip"
)


async def create_session(
    db: Connection,
    *,
    session_id: str,
    user_id: str,
    token_id: str,
    now: datetime,
    expires_at: datetime,
    ends_at: datetime,
    user_agent: str,
    ip: str,
) -> None:
    """A new session; it ends at ``ends_at`` however often it is refreshed (and its
    token at ``expires_at`` unless rotated first: never after ``ends_at``)."""
    await db.execute(
        "INSERT INTO sessions (id, user_id, token_id, created_at, last_used_at, expires_at,"
        " ends_at, user_agent, ip) VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8)",
        session_id,
        user_id,
        token_id,
        now,
        min(expires_at, ends_at),
        ends_at,
        user_agent[:256],
        ip,
    )


async def rotate_session(
    db: Connection,
    *,
    session_id: str,
    old_token_id: str,
    new_token_id: str,
    now: datetime,
    expires_at: datetime,
    ip: str,
) -> Row | None:
    """Swap the session's current token for a new one, if and only if ``old_token_id``
    is still current and the session is live (not revoked, its token not expired, its
    absolute end not reached). The new token expires at ``expires_at`` or at the
    session's end, whichever comes first (the row returned says which). One statement:
    of any number of racing rotations with the same token, exactly one gets a row."""
    return await db.fetchrow(
        "UPDATE sessions SET token_id = $3, generation = generation + 1, last_used_at = $4,"
        " expires_at = CASE WHEN $5 < ends_at THEN $5 ELSE ends_at END, ip = $6"
        " WHERE id = $1 AND token_id = $2 AND revoked_at IS NULL AND expires_at > $4"
        " AND ends_at > $4"
        " RETURNING id, user_id, token_id, generation, created_at, last_used_at, expires_at,"
        " ends_at, revoked_at, user_agent, ip",
        session_id,
        old_token_id,
        new_token_id,
        now,
        expires_at,
        ip,
    )


async def get_session(db: Connection, *, session_id: str) -> Row | None:
    return await db.fetchrow(
        "SELECT id, user_id, token_id, generation, created_at, last_used_at, expires_at,"
        " ends_at, revoked_at, user_agent, ip FROM sessions WHERE id = $1",
        session_id,
    )


async def list_sessions(db: Connection, *, user_id: str, now: datetime) -> list[Row]:
    return await db.fetch(
        "SELECT id, user_id, token_id, generation, created_at, last_used_at, expires_at,"
        " ends_at, revoked_at, user_agent, ip FROM sessions"
        " WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND ends_at > $2"
        " ORDER BY created_at DESC, id DESC",
        user_id,
        now,
    )


async def revoke_session(
    db: Connection, *, session_id: str, user_id: str, reason: str, now: datetime
) -> Row | None:
    """Revoke one live session of ``user_id``; ``None`` if there is none such."""
    return await db.fetchrow(
        "UPDATE sessions SET revoked_at = $3, revoked_reason = $4"
        " WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING id, expires_at",
        session_id,
        user_id,
        now,
        reason,
    )


async def revoke_all_sessions(
    db: Connection, *, user_id: str, reason: str, now: datetime, keep: str | None = None
) -> list[Row]:
    """Revoke every live session of the user (but ``keep``); the rows revoked."""
    if keep is None:
        return await db.fetch(
            "UPDATE sessions SET revoked_at = $2, revoked_reason = $3"
            " WHERE user_id = $1 AND revoked_at IS NULL RETURNING id, expires_at",
            user_id,
            now,
            reason,
        )
    return await db.fetch(
        "UPDATE sessions SET revoked_at = $2, revoked_reason = $3"
        " WHERE user_id = $1 AND revoked_at IS NULL AND id <> $4 RETURNING id, expires_at",
        user_id,
        now,
        reason,
        keep,
    )


async def recently_revoked(db: Connection, *, since: datetime) -> list[Row]:
    """Sessions revoked after ``since``: ``id`` and ``revoked_at``."""
    return await db.fetch("SELECT id, revoked_at FROM sessions WHERE revoked_at > $1", since)

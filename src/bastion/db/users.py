"""Users: accounts, roles, flags."""

from __future__ import annotations

from datetime import datetime

from bastion.db.database import Connection, IntegrityConflict, Row

__all__ = [
    "create_user",
    "get_user",
    "get_user_by_email",
    "list_users",
    "set_flagged",
    "update_name",
    "update_password_hash",
]

USER_COLUMNS = "id, email, name, role, flagged, created_at, password_hash, password_changed_at"


async def create_user(
    db: Connection,
    *,
    user_id: str,
    email: str,
    name: str,
    password_hash: str,
    role: str,
    now: datetime,
) -> Row:
    row = await db.fetchrow(
        "INSERT INTO users (id, email, name, password_hash, role, created_at, password_changed_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $6)"
        " ON CONFLICT (email) DO NOTHING RETURNING id, email, name, role, flagged, created_at, password_hash, password_changed_at",
        user_id,
        email,
        name,
        password_hash,
        role,
        now,
    )
    if row is None:
        raise IntegrityConflict("email already registered")
    return row


async def get_user(db: Connection, *, user_id: str) -> Row | None:
    return await db.fetchrow(
        "SELECT id, email, name, role, flagged, created_at, password_hash, password_changed_at FROM users WHERE id = $1",
        user_id,
    )


async def get_user_by_email(db: Connection, *, email: str) -> Row | None:
    return await db.fetchrow(
        "SELECT id, email, name, role, flagged, created_at, password_hash, password_changed_at FROM users WHERE email = $1",
        email,
    )


async def update_name(db: Connection, *, user_id: str, name: str) -> Row | None:
    return await db.fetchrow(
        "UPDATE users SET name = $2 WHERE id = $1 RETURNING id, email, name, role, flagged, created_at, password_hash, password_changed_at",
        user_id,
        name,
    )


async def update_password_hash(
    db: Connection, *, user_id: str, password_hash: str, now: datetime | None
) -> None:
    """Store a new hash; ``now`` marks a password change (``None``: a silent rehash)."""
    if now is None:
        await db.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash
        )
    else:
        await db.execute(
            "UPDATE users SET password_hash = $2, password_changed_at = $3 WHERE id = $1",
            user_id,
            password_hash,
            now,
        )


async def set_flagged(db: Connection, *, user_id: str, flagged: bool) -> bool:
    row = await db.fetchrow(
        "UPDATE users SET flagged = $2 WHERE id = $1 RETURNING id", user_id, flagged
    )
    return row is not None


async def list_users(db: Connection, *, after: str | None, limit: int) -> list[Row]:
    """Users in id order, ``limit`` of them after the id ``after``."""
    if after is None:
        return await db.fetch(
            "SELECT id, email, name, role, flagged, created_at, password_hash, password_changed_at FROM users ORDER BY id LIMIT $1",
            limit,
        )
    return await db.fetch(
        "SELECT id, email, name, role, flagged, created_at, password_hash, password_changed_at FROM users WHERE id > $1 ORDER BY id LIMIT $2",
        after,
        limit,
    )

"""Stored security events, for the admin's view."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bastion.db.database import Connection, Row

__all__ = ["insert_events", "list_events"]

EVENT_COLUMNS = "id, ts, event, ip, user_id, method, path, request_id, reason"


def _text(value: str | None) -> str | None:
    """Text a client influenced (a path, a field name in a reason), made storable: neither
    database takes lone surrogates, and PostgreSQL refuses NUL. One bad event must not
    make the whole batch, and the writer with it, fail."""
    if value is None:
        return None
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


async def insert_events(db: Connection, events: Sequence[Mapping[str, Any]]) -> None:
    await db.executemany(
        "INSERT INTO security_events (id, ts, event, ip, user_id, method, path, request_id, reason)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        [
            (
                e["id"],
                e["ts"],
                e["event"],
                _text(e["ip"]),
                e.get("user_id"),
                _text(e["method"]),
                _text(e["path"]),
                _text(e["request_id"]),
                _text(e.get("reason")),
            )
            for e in events
        ],
    )


async def list_events(
    db: Connection, *, after: tuple[datetime, str] | None, limit: int
) -> list[Row]:
    if after is None:
        return await db.fetch(
            "SELECT id, ts, event, ip, user_id, method, path, request_id, reason FROM security_events ORDER BY ts DESC, id DESC LIMIT $1",
            limit,
        )
    return await db.fetch(
        "SELECT id, ts, event, ip, user_id, method, path, request_id, reason FROM security_events"
        " WHERE ts < $2 OR (ts = $2 AND id < $3) ORDER BY ts DESC, id DESC LIMIT $1",
        limit,
        after[0],
        after[1],
    )

"""Tiny ``$1``-style connections for :meth:`SqlSessionStore.open
<bastion.security.session_store.SqlSessionStore.open>`, for apps that bring no database
layer of their own. ``aiosqlite`` and ``asyncpg`` are imported only when a connection
is opened, so the security layer installs without either.

Values are always bound, never formatted into the statement text (no SQL injection
through a token id or a user agent).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["PostgresConnection", "SqliteConnection", "connect"]

_PARAM = re.compile(r"\$(\d+)")
# The service's SQLite form (bastion.db.database): fixed width, so text order is time order.
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(_TS_FORMAT)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


class SqliteConnection:
    """One aiosqlite connection, one statement at a time. Timestamps are stored as
    fixed-width UTC text and come back as that text."""

    dialect = "sqlite"

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SqliteConnection:
        import sqlite3

        import aiosqlite

        path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA busy_timeout=5000"):
            await conn.execute(pragma)
        return cls(conn)

    async def _run(self, query: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        async with (
            self._lock,
            self._conn.execute(
                _PARAM.sub(r"?\1", query), [_sqlite_value(a) for a in args]
            ) as cursor,
        ):
            return [dict(r) for r in await cursor.fetchall()]

    async def execute(self, query: str, *args: Any) -> None:
        await self._run(query, args)

    async def fetch(self, query: str, *args: Any) -> list[dict[str, Any]]:
        return await self._run(query, args)

    async def fetchrow(self, query: str, *args: Any) -> dict[str, Any] | None:
        rows = await self._run(query, args)
        return rows[0] if rows else None

    async def close(self) -> None:
        await self._conn.close()


def _pg_row(record: Any) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in record.items()}


class PostgresConnection:
    """A small asyncpg pool; ids of type ``uuid`` come back as strings."""

    dialect = "postgresql"

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str) -> PostgresConnection:
        import asyncpg

        return cls(await asyncpg.create_pool(url, min_size=1, max_size=4))

    async def execute(self, query: str, *args: Any) -> None:
        await self._pool.execute(query, *args)

    async def fetch(self, query: str, *args: Any) -> list[dict[str, Any]]:
        return [_pg_row(r) for r in await self._pool.fetch(query, *args)]

    async def fetchrow(self, query: str, *args: Any) -> dict[str, Any] | None:
        record = await self._pool.fetchrow(query, *args)
        return None if record is None else _pg_row(record)

    async def close(self) -> None:
        await self._pool.close()


async def connect(url: str) -> SqliteConnection | PostgresConnection:
    """A connection to ``sqlite:///path`` or ``postgresql://...``."""
    scheme = urlsplit(url).scheme
    if scheme in ("postgresql", "postgres"):
        return await PostgresConnection.open(url)
    if scheme == "sqlite":
        return await SqliteConnection.open(
            Path(url.removeprefix("sqlite:///").removeprefix("sqlite://"))
        )
    raise ValueError(f"unsupported database URL scheme {scheme!r}; use sqlite:/// or postgresql://")

"""One small async interface over asyncpg (PostgreSQL) and aiosqlite (SQLite).

Repositories write their SQL once, with ``$1``-style parameters; the SQLite backend
rewrites them to SQLite's numbered ``?1`` form (the values themselves are always bound,
never formatted into the text). Rows come back as plain dicts with ids as strings,
timestamps as aware datetimes and booleans as bools, whichever database answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from bastion.db.pool import PgPool, pool_arguments
from bastion.security import BastionError

__all__ = [
    "Connection",
    "Database",
    "DatabaseUnavailable",
    "IntegrityConflict",
    "PgTimeouts",
    "PostgresDatabase",
    "Row",
    "open_database",
]

Row = dict[str, Any]
Dialect = Literal["sqlite", "postgresql"]


class DatabaseUnavailable(BastionError):
    """The database could not be reached or timed out; the API answers 503."""


class IntegrityConflict(BastionError):
    """A unique or foreign-key constraint refused the write."""


class Connection(Protocol):
    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...
    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...
    async def execute(self, sql: str, *args: Any) -> None: ...
    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None: ...


class Database(Connection, Protocol):
    dialect: Dialect

    def transaction(self) -> Any:
        """``async with db.transaction() as conn:`` runs everything on ``conn`` atomically."""
        ...

    async def ping(self) -> None: ...
    async def close(self) -> None: ...


def open_database(
    url: str, *, pool: PgPool | None = None, timeouts: PgTimeouts | None = None
) -> Database:
    """The database of ``url``; ``pool`` and ``timeouts`` apply to PostgreSQL only."""
    scheme = urlsplit(url).scheme
    if scheme in ("postgresql", "postgres"):
        return PostgresDatabase(url, pool=pool or PgPool(), timeouts=timeouts or PgTimeouts())
    if scheme == "sqlite":
        return SqliteDatabase(Path(url.removeprefix("sqlite:///").removeprefix("sqlite://")))
    raise ValueError(f"unsupported database URL scheme {scheme!r}; use sqlite:/// or postgresql://")


# --------------------------------------------------------------------------- PostgreSQL


def _pg_row(record: Any) -> Row:
    return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in record.items()}


class _PgConn:
    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    @property
    def raw(self) -> Any:
        return self._conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return [_pg_row(r) for r in await self._conn.fetch(sql, *args)]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        record = await self._conn.fetchrow(sql, *args)
        return None if record is None else _pg_row(record)

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute(sql, *args)

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, args)


async def _reset(conn: Any) -> None:
    """What a pooled connection needs before reuse. asyncpg's default also runs
    ``RESET ALL; UNLISTEN *; CLOSE ALL; pg_advisory_unlock_all()``: one more round trip
    per query, for session state this code never creates (it uses no LISTEN, no
    session-level SET, cursors or advisory locks outside transactions)."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


@dataclass(frozen=True, slots=True)
class PgTimeouts:
    """How long, in seconds, each wait on PostgreSQL may last. A server that does not
    answer at all (frozen, or behind a network that drops packets) must cost a request
    a 503 after a bounded wait, never a hang, and never a worker that cannot stop.

    ``statement`` is enforced by the server (``statement_timeout``, lock waits
    included); ``command`` is the client's own limit on any round trip, a little past
    the server's so that the server's cancel normally comes first; ``acquire`` bounds
    the wait for a pooled connection (and, in asyncpg, for giving one back): as long
    as a statement, since a server that answers frees every connection within that,
    and under a burst the wait for one can take seconds without anything being wrong;
    ``connect`` a new connection; ``ping`` the readiness probe's query; ``close`` the
    wait for connections in use at shutdown, after which they are cut."""

    statement: float = 10.0
    command: float = 12.0
    acquire: float = 10.0
    connect: float = 5.0
    ping: float = 2.0
    close: float = 5.0

    def __post_init__(self) -> None:
        for name in (f.name for f in fields(self)):
            if not getattr(self, name) > 0:
                raise ValueError(f"the {name} timeout must be positive, not {getattr(self, name)}")
        if self.command < self.statement:
            raise ValueError("the command timeout must not be shorter than the statement timeout")


class PostgresDatabase:
    dialect: Dialect = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        pool: PgPool | None = None,
        timeouts: PgTimeouts = PgTimeouts(),
    ) -> None:
        self.url = url
        self.pool_config = pool or PgPool()
        self.timeouts = timeouts
        self._pool: Any = None
        self._connecting: asyncio.Future[Any] | None = None

    async def _get_pool(self) -> Any:
        """The pool, opened by the first caller that needs it. Callers that arrive while
        it is being opened share that one attempt (never one after another, each with
        its own wait); each waits at most ``timeouts.connect`` from its arrival, then
        gets :class:`DatabaseUnavailable`, and the attempt itself ends within that."""
        if self._pool is not None:
            return self._pool
        attempt = self._connecting
        if attempt is None:
            attempt = self._connecting = asyncio.ensure_future(self._open_pool())
            attempt.add_done_callback(self._opened)
        try:
            async with asyncio.timeout(self.timeouts.connect):
                # Shielded: a waiter that gives up (or is cancelled) leaves the attempt
                # to the others.
                return await asyncio.shield(attempt)
        except TimeoutError:
            raise DatabaseUnavailable("no connection to PostgreSQL in time") from None
        except DatabaseUnavailable as exc:  # each waiter its own error, not one shared
            raise DatabaseUnavailable(str(exc)) from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if attempt.cancelled() and (task is None or not task.cancelling()):
                # The attempt, not this caller, was cancelled: the database closed.
                raise DatabaseUnavailable("the database was closed while connecting") from None
            raise

    def _opened(self, attempt: asyncio.Future[Any]) -> None:
        if self._connecting is attempt:
            self._connecting = None  # failed or not, the next caller starts afresh
        if not attempt.cancelled() and attempt.exception() is None:
            self._pool = attempt.result()

    async def _open_pool(self) -> Any:
        import asyncpg

        try:
            # ``timeout`` bounds each connection; this, the whole opening (the first
            # connection, then the rest of ``min_size``, and their setup). asyncpg
            # terminates whatever a failed or cancelled opening had connected.
            async with asyncio.timeout(self.timeouts.connect):
                return await asyncpg.create_pool(
                    self.url,
                    reset=_reset,
                    **pool_arguments(self.pool_config, self.timeouts),
                )
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc

    @asynccontextmanager
    async def _acquire(self, *, transaction: bool) -> AsyncIterator[_PgConn]:
        import asyncpg

        pool = await self._get_pool()
        try:
            async with pool.acquire(timeout=self.timeouts.acquire) as conn:
                if transaction:
                    async with conn.transaction():
                        yield _PgConn(conn)
                else:
                    yield _PgConn(conn)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityConflict(str(exc)) from exc
        except (
            OSError,
            TimeoutError,
            asyncpg.PostgresConnectionError,
            asyncpg.InterfaceError,
            asyncpg.CannotConnectNowError,
            asyncpg.AdminShutdownError,
            asyncpg.QueryCanceledError,  # statement_timeout: the server gave up on it
            asyncpg.TooManyConnectionsError,
        ) as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    def transaction(self) -> Any:
        return self._acquire(transaction=True)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._acquire(transaction=False) as conn:
            return await conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self._acquire(transaction=False) as conn:
            return await conn.fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> None:
        async with self._acquire(transaction=False) as conn:
            await conn.execute(sql, *args)

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        async with self._acquire(transaction=False) as conn:
            await conn.executemany(sql, args)

    async def ping(self) -> None:
        async with self._acquire(transaction=False) as conn:
            await conn.raw.fetchval("SELECT 1", timeout=self.timeouts.ping)

    async def close(self) -> None:
        """Close the pool once the connections in use are given back, waiting at most
        ``timeouts.close``; then cut them (asyncpg terminates a pool whose close is
        cancelled)."""
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            connecting.cancel()  # asyncpg terminates what it connected
            with contextlib.suppress(BaseException):
                await connecting
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                async with asyncio.timeout(self.timeouts.close):
                    await pool.close()
            except TimeoutError:
                pool.terminate()


# --------------------------------------------------------------------------- SQLite

_PARAM = re.compile(r"\$(\d+)")
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"


def _adapt_datetime(value: datetime) -> str:
    # One fixed-width format, so that text order is time order in SQLite.
    return value.astimezone(UTC).strftime(_TS_FORMAT)


def _convert_timestamp(raw: bytes) -> datetime:
    return datetime.fromisoformat(raw.decode())


sqlite3.register_adapter(datetime, _adapt_datetime)
sqlite3.register_adapter(uuid.UUID, str)
sqlite3.register_converter("TIMESTAMPTZ", _convert_timestamp)
sqlite3.register_converter("BOOLEAN", lambda raw: raw not in (b"0", b""))


_sql_cache: dict[str, str] = {}


def _to_sqlite(sql: str) -> str:
    converted = _sql_cache.get(sql)
    if converted is None:
        converted = _sql_cache[sql] = _PARAM.sub(r"?\1", sql)
    return converted


class _SqliteConn:
    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._conn.execute(_to_sqlite(sql), args) as cur:
            return [dict(r) for r in await cur.fetchall()]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self._conn.execute(_to_sqlite(sql), args) as cur:
            row = await cur.fetchone()
        return None if row is None else dict(row)

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute(_to_sqlite(sql), args)

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(_to_sqlite(sql), args)


class SqliteDatabase:
    """One connection, one statement or transaction at a time (SQLite has one writer
    anyway); WAL so readers of other processes are not blocked."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: Any = None
        self._lock = asyncio.Lock()

    async def _connection(self) -> Any:
        if self._conn is None:
            import aiosqlite

            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = await aiosqlite.connect(
                self.path, detect_types=sqlite3.PARSE_DECLTYPES, isolation_level=None
            )
            conn.row_factory = sqlite3.Row
            for pragma in (
                "PRAGMA journal_mode=WAL",
                "PRAGMA synchronous=NORMAL",
                "PRAGMA foreign_keys=ON",
                "PRAGMA busy_timeout=5000",
            ):
                await conn.execute(pragma)
            self._conn = conn
        return self._conn

    @asynccontextmanager
    async def _use(self, *, transaction: bool) -> AsyncIterator[_SqliteConn]:
        async with self._lock:
            try:
                conn = await self._connection()
                if not transaction:
                    yield _SqliteConn(conn)
                    return
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    yield _SqliteConn(conn)
                except BaseException:
                    await conn.execute("ROLLBACK")
                    raise
                await conn.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                raise IntegrityConflict(str(exc)) from exc
            except sqlite3.OperationalError as exc:
                raise DatabaseUnavailable(str(exc)) from exc

    def transaction(self) -> Any:
        return self._use(transaction=True)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._use(transaction=False) as conn:
            return await conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self._use(transaction=False) as conn:
            return await conn.fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> None:
        async with self._use(transaction=False) as conn:
            await conn.execute(sql, *args)

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        async with self._use(transaction=False) as conn:
            await conn.executemany(sql, args)

    async def ping(self) -> None:
        await self.fetchrow("SELECT 1 AS ok")

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

"""Where refresh-token sessions live: one row per session (a token family).

A session's refresh token rotates on every use; the row holds the id (``token_id``) of
the one current token. Rotation is a compare-and-set on that id, so a stolen token that
was already rotated away cannot be swapped in again, and of any number of racing
rotations with the same token exactly one wins (a read-then-write would let them all
pass). The row is the truth about a session's end; revocation flags in a
:class:`~bastion.store.Store` only make it visible fast (:mod:`bastion.security.sessions`).

:class:`MemorySessionStore` is for tests and single-process apps; :class:`SqlSessionStore`
runs the same statements on SQLite and PostgreSQL, on any connection with
``execute/fetch/fetchrow(query, *args)`` and ``$1``-style parameters.
"""

from __future__ import annotations

import builtins
import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

__all__ = ["MemorySessionStore", "Session", "SessionStore", "SqlConnection", "SqlSessionStore"]

# The longest user agent kept: a header is the client's to fill, the row is not.
USER_AGENT_MAX = 256


@dataclass(frozen=True, slots=True)
class Session:
    """One session row. ``expires_at`` is when its current refresh token expires (never
    after ``ends_at``, the session's absolute end, which no refresh moves)."""

    id: str
    user_id: str
    token_id: str
    generation: int
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    ends_at: datetime
    revoked_at: datetime | None
    user_agent: str
    ip: str
    # How the login behind the session was authenticated (RFC 8176's names): ("pwd",)
    # for a password alone, ("pwd", "otp") or ("pwd", "recovery") with a second factor,
    # ("passkey",) for a passkey. Set when the session starts; a refresh keeps it.
    amr: tuple[str, ...] = ("pwd",)

    def live(self, now: datetime) -> bool:
        """Not revoked, its token not expired, its absolute end not reached."""
        return self.revoked_at is None and self.expires_at > now and self.ends_at > now


class SessionStore(Protocol):
    """The session rows. :meth:`rotate` must be atomic: a compare-and-set on
    ``token_id``, one winner however many callers race."""

    async def create(
        self,
        *,
        session_id: str,
        user_id: str,
        token_id: str,
        now: datetime,
        expires_at: datetime,
        ends_at: datetime,
        user_agent: str,
        ip: str,
        amr: Sequence[str] = ("pwd",),
    ) -> None:
        """A new session; its token expires at ``expires_at`` or ``ends_at``, the sooner."""
        ...

    async def rotate(
        self,
        *,
        session_id: str,
        old_token_id: str,
        new_token_id: str,
        now: datetime,
        expires_at: datetime,
        ip: str,
    ) -> Session | None:
        """Swap ``old_token_id`` for ``new_token_id`` if and only if it is still current
        and the session is live at ``now``; the new token expires at ``expires_at`` or at
        the session's end, the sooner. The updated row, or ``None`` (nothing changed)."""
        ...

    async def get(self, session_id: str) -> Session | None: ...

    async def live(self, user_id: str, *, now: datetime) -> builtins.list[Session]:
        """The user's live sessions, newest first."""
        ...

    async def revoke(self, session_id: str, *, user_id: str, reason: str, now: datetime) -> bool:
        """Revoke one unrevoked session of ``user_id``; false if there is none such."""
        ...

    async def revoke_all(
        self, user_id: str, *, reason: str, now: datetime, keep: str | None = None
    ) -> builtins.list[str]:
        """Revoke every unrevoked session of the user but ``keep``; the ids revoked."""
        ...

    async def recently_revoked(self, *, since: datetime) -> builtins.list[tuple[str, datetime]]:
        """``(id, revoked_at)`` of the sessions revoked after ``since``."""
        ...


class MemorySessionStore:
    """Sessions in a dict, for tests and single-process apps. Every operation runs
    without awaiting in between, so each is atomic on its event loop."""

    def __init__(self) -> None:
        self._rows: dict[str, Session] = {}
        self.reasons: dict[str, str] = {}

    async def create(
        self,
        *,
        session_id: str,
        user_id: str,
        token_id: str,
        now: datetime,
        expires_at: datetime,
        ends_at: datetime,
        user_agent: str,
        ip: str,
        amr: Sequence[str] = ("pwd",),
    ) -> None:
        if session_id in self._rows:
            raise ValueError("a session with this id exists already")
        self._rows[session_id] = Session(
            id=session_id,
            user_id=user_id,
            token_id=token_id,
            generation=0,
            created_at=now,
            last_used_at=now,
            expires_at=min(expires_at, ends_at),
            ends_at=ends_at,
            revoked_at=None,
            user_agent=user_agent[:USER_AGENT_MAX],
            ip=ip,
            amr=tuple(amr),
        )

    async def rotate(
        self,
        *,
        session_id: str,
        old_token_id: str,
        new_token_id: str,
        now: datetime,
        expires_at: datetime,
        ip: str,
    ) -> Session | None:
        row = self._rows.get(session_id)
        if row is None or row.token_id != old_token_id or not row.live(now):
            return None
        rotated = dataclasses.replace(
            row,
            token_id=new_token_id,
            generation=row.generation + 1,
            last_used_at=now,
            expires_at=min(expires_at, row.ends_at),
            ip=ip,
        )
        self._rows[session_id] = rotated
        return rotated

    async def get(self, session_id: str) -> Session | None:
        return self._rows.get(session_id)

    async def live(self, user_id: str, *, now: datetime) -> builtins.list[Session]:
        rows = [r for r in self._rows.values() if r.user_id == user_id and r.live(now)]
        return sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)

    async def revoke(self, session_id: str, *, user_id: str, reason: str, now: datetime) -> bool:
        row = self._rows.get(session_id)
        if row is None or row.user_id != user_id or row.revoked_at is not None:
            return False
        self._rows[session_id] = dataclasses.replace(row, revoked_at=now)
        self.reasons[session_id] = reason
        return True

    async def revoke_all(
        self, user_id: str, *, reason: str, now: datetime, keep: str | None = None
    ) -> builtins.list[str]:
        ended = [
            r.id
            for r in self._rows.values()
            if r.user_id == user_id and r.revoked_at is None and r.id != keep
        ]
        for sid in ended:
            self._rows[sid] = dataclasses.replace(self._rows[sid], revoked_at=now)
            self.reasons[sid] = reason
        return ended

    async def recently_revoked(self, *, since: datetime) -> builtins.list[tuple[str, datetime]]:
        return [
            (r.id, r.revoked_at)
            for r in self._rows.values()
            if r.revoked_at is not None and r.revoked_at > since
        ]


class SqlConnection(Protocol):
    """What :class:`SqlSessionStore` needs of a connection: ``$1``-style parameters,
    rows as mappings. ``dialect`` (``"sqlite"`` or ``"postgresql"``) picks the types of
    :meth:`SqlSessionStore.create_schema`."""

    async def execute(self, query: str, /, *args: Any) -> Any: ...
    async def fetch(self, query: str, /, *args: Any) -> builtins.list[Any]: ...
    async def fetchrow(self, query: str, /, *args: Any) -> Any: ...


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# The statements of bastion's own schema; ``{table}`` is the table's name.
_STATEMENTS = {
    "insert": "INSERT INTO {table} (id, user_id, token_id, created_at, last_used_at, expires_at,"
    " ends_at, user_agent, ip, amr) VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9)",
    "rotate": "UPDATE {table} SET token_id = $3, generation = generation + 1, last_used_at = $4,"
    " expires_at = CASE WHEN $5 < ends_at THEN $5 ELSE ends_at END, ip = $6"
    " WHERE id = $1 AND token_id = $2 AND revoked_at IS NULL AND expires_at > $4"
    " AND ends_at > $4 RETURNING id, user_id, token_id, generation, created_at, last_used_at,"
    " expires_at, ends_at, revoked_at, user_agent, ip, amr",
    "get": "SELECT id, user_id, token_id, generation, created_at, last_used_at, expires_at,"
    " ends_at, revoked_at, user_agent, ip, amr FROM {table} WHERE id = $1",
    "live": "SELECT id, user_id, token_id, generation, created_at, last_used_at, expires_at,"
    " ends_at, revoked_at, user_agent, ip, amr FROM {table}"
    " WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND ends_at > $2"
    " ORDER BY created_at DESC, id DESC",
    "revoke": "UPDATE {table} SET revoked_at = $3, revoked_reason = $4"
    " WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING id",
    "revoke_all": "UPDATE {table} SET revoked_at = $2, revoked_reason = $3"
    " WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
    "revoke_all_but": "UPDATE {table} SET revoked_at = $2, revoked_reason = $3"
    " WHERE user_id = $1 AND revoked_at IS NULL AND id <> $4 RETURNING id",
    "recent": "SELECT id, revoked_at FROM {table} WHERE revoked_at > $1",
    "schema": "CREATE TABLE IF NOT EXISTS {table} ("
    " id TEXT PRIMARY KEY,"
    " user_id TEXT NOT NULL,"
    " token_id TEXT NOT NULL,"
    " generation INTEGER NOT NULL DEFAULT 0,"
    " created_at {ts} NOT NULL,"
    " last_used_at {ts} NOT NULL,"
    " expires_at {ts} NOT NULL,"
    " ends_at {ts} NOT NULL,"
    " revoked_at {ts},"
    " revoked_reason TEXT,"
    " user_agent TEXT NOT NULL DEFAULT '',"
    " ip TEXT NOT NULL DEFAULT '',"
    " amr TEXT NOT NULL DEFAULT 'pwd')",
    "index": "CREATE INDEX IF NOT EXISTS {table}_by_user ON {table} (user_id, created_at)",
}


def _moment(value: Any) -> datetime:
    # A connection without type conversion (SQLite's) answers the stored text.
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _session(row: Any) -> Session:
    revoked = row["revoked_at"]
    return Session(
        id=str(row["id"]),
        user_id=str(row["user_id"]),
        token_id=row["token_id"],
        generation=int(row["generation"]),
        created_at=_moment(row["created_at"]),
        last_used_at=_moment(row["last_used_at"]),
        expires_at=_moment(row["expires_at"]),
        ends_at=_moment(row["ends_at"]),
        revoked_at=None if revoked is None else _moment(revoked),
        user_agent=row["user_agent"],
        ip=row["ip"],
        amr=tuple(str(row["amr"]).split()),
    )


class SqlSessionStore:
    """Sessions in a SQL table (SQLite or PostgreSQL). Rotation is one ``UPDATE ...
    WHERE token_id = <the presented one>``: the database serialises racing rotations and
    exactly one of them matches. Every value is bound as a parameter; the table name,
    the only text put into the statements, must be a plain identifier."""

    def __init__(self, connection: SqlConnection, *, table: str = "sessions") -> None:
        if not _IDENTIFIER.fullmatch(table):
            raise ValueError(f"not a plain SQL identifier: {table!r}")
        self.connection = connection
        self.table = table
        self._owns = False  # the connection is the caller's
        # The table name is the only text put into a statement: a checked identifier.
        self._sql = {name: sql.replace("{table}", table) for name, sql in _STATEMENTS.items()}

    @classmethod
    async def open(cls, url: str, *, table: str = "sessions") -> SqlSessionStore:
        """A store on its own connection to ``sqlite:///path`` or ``postgresql://...``
        (needs the ``aiosqlite`` or ``asyncpg`` package); :meth:`close` closes it."""
        from bastion.security.sql_connections import connect

        store = cls(await connect(url), table=table)
        store._owns = True
        return store

    async def close(self) -> None:
        """Close the connection if :meth:`open` opened it (a caller's is the caller's)."""
        if self._owns:
            await self.connection.close()  # type: ignore[attr-defined]

    async def create_schema(self) -> None:
        """Create the table (and its index) if missing: the columns the service's
        migrations create, for apps that have no migrations of their own."""
        postgres = getattr(self.connection, "dialect", "postgresql") == "postgresql"
        schema = self._sql["schema"].replace("{ts}", "timestamptz" if postgres else "TIMESTAMPTZ")
        await self.connection.execute(schema)
        await self.connection.execute(self._sql["index"])

    async def create(
        self,
        *,
        session_id: str,
        user_id: str,
        token_id: str,
        now: datetime,
        expires_at: datetime,
        ends_at: datetime,
        user_agent: str,
        ip: str,
        amr: Sequence[str] = ("pwd",),
    ) -> None:
        await self.connection.execute(
            self._sql["insert"],
            session_id,
            user_id,
            token_id,
            now,
            min(expires_at, ends_at),
            ends_at,
            user_agent[:USER_AGENT_MAX],
            ip,
            " ".join(amr),
        )

    async def rotate(
        self,
        *,
        session_id: str,
        old_token_id: str,
        new_token_id: str,
        now: datetime,
        expires_at: datetime,
        ip: str,
    ) -> Session | None:
        row = await self.connection.fetchrow(
            self._sql["rotate"], session_id, old_token_id, new_token_id, now, expires_at, ip
        )
        return None if row is None else _session(row)

    async def get(self, session_id: str) -> Session | None:
        row = await self.connection.fetchrow(self._sql["get"], session_id)
        return None if row is None else _session(row)

    async def live(self, user_id: str, *, now: datetime) -> builtins.list[Session]:
        return [_session(r) for r in await self.connection.fetch(self._sql["live"], user_id, now)]

    async def revoke(self, session_id: str, *, user_id: str, reason: str, now: datetime) -> bool:
        row = await self.connection.fetchrow(self._sql["revoke"], session_id, user_id, now, reason)
        return row is not None

    async def revoke_all(
        self, user_id: str, *, reason: str, now: datetime, keep: str | None = None
    ) -> builtins.list[str]:
        if keep is None:
            rows = await self.connection.fetch(self._sql["revoke_all"], user_id, now, reason)
        else:
            rows = await self.connection.fetch(
                self._sql["revoke_all_but"], user_id, now, reason, keep
            )
        return [str(r["id"]) for r in rows]

    async def recently_revoked(self, *, since: datetime) -> builtins.list[tuple[str, datetime]]:
        rows = await self.connection.fetch(self._sql["recent"], since)
        return [(str(r["id"]), _moment(r["revoked_at"])) for r in rows]

"""Migrations: the schema is created once, and running them again changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from bastion.db import Database
from bastion.db import migrations as migrations_module
from bastion.db.migrations import MIGRATIONS, migrate, pending
from bastion.security.session_store import SqlSessionStore

TABLES = {
    "users", "products", "promo_codes", "orders", "order_items", "sessions", "security_events",
}  # fmt: skip


async def _tables(db: Database) -> set[str]:
    if db.dialect == "postgresql":
        rows = await db.fetch(
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    else:
        rows = await db.fetch("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {r["name"] for r in rows}


async def test_a_fresh_database_gets_every_migration_once(fresh_db: Database) -> None:
    assert await pending(fresh_db) == list(MIGRATIONS)
    applied = await migrate(fresh_db)
    assert applied == list(MIGRATIONS)
    assert await _tables(fresh_db) >= TABLES
    assert await pending(fresh_db) == []


async def test_migrating_twice_is_a_no_op(fresh_db: Database) -> None:
    await migrate(fresh_db)
    await fresh_db.execute(
        "INSERT INTO promo_codes (code, percent_off, active, created_at)"
        " VALUES ('KEEP-ME', 5, TRUE, '2020-01-01T00:00:00+00:00')"
    )
    assert await migrate(fresh_db) == []
    versions = await fresh_db.fetch("SELECT version FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in versions] == [m.version for m in MIGRATIONS]
    assert await fresh_db.fetchrow("SELECT code FROM promo_codes WHERE code = 'KEEP-ME'")


class _Slow:
    """A starter whose event loop is busy after each commit (a loaded worker): the
    database it is given, with a pause after every transaction."""

    def __init__(self, db: Database, pause: float) -> None:
        self._db = db
        self._pause = pause

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        async with self._db.transaction() as conn:
            yield conn
        await asyncio.sleep(self._pause)


async def test_concurrent_migrations_apply_each_step_once(fresh_db: Database) -> None:
    """One starter applies every step while the others wait and find nothing to do. The
    first starter is slow to come back after each commit, and three more come in while
    it is between two transactions: with a lock per step, they would take the steps it
    had not reached yet."""

    async def prompt() -> list[migrations_module.Migration]:
        await asyncio.sleep(0.15)
        return await migrate(fresh_db)

    slow = migrate(cast(Database, _Slow(fresh_db, pause=0.1)))
    results = await asyncio.gather(slow, *(prompt() for _ in range(3)))
    assert [len(r) for r in results] == [len(MIGRATIONS), 0, 0, 0]
    versions = await fresh_db.fetch("SELECT version FROM schema_migrations")
    assert len(versions) == len(MIGRATIONS)


async def test_a_step_that_fails_leaves_the_schema_as_it_was(
    fresh_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All or nothing: the steps before a failing one are undone with it, so a restart
    after the fix starts from a known schema, never a half-migrated one."""
    broken = migrations_module.Migration(
        len(MIGRATIONS) + 1, "broken", postgresql=("SELECT * FROM no_such_table",),
        sqlite=("SELECT * FROM no_such_table",),
    )  # fmt: skip
    monkeypatch.setattr(migrations_module, "MIGRATIONS", (*MIGRATIONS, broken))
    with pytest.raises(Exception, match="no_such_table"):
        await migrate(fresh_db)
    assert "users" not in await _tables(fresh_db)
    monkeypatch.setattr(migrations_module, "MIGRATIONS", MIGRATIONS)
    assert await migrate(fresh_db) == list(MIGRATIONS)


async def test_sessions_from_before_the_absolute_lifetime_end_30_days_after_their_login(
    fresh_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session written by the first schema (no ``ends_at``) gets the default lifetime
    from its login: one 40 days old has ended, its token cut to that end; one a day
    old lives on, its token untouched."""
    with monkeypatch.context() as m:
        m.setattr(migrations_module, "MIGRATIONS", MIGRATIONS[:1])
        await migrate(fresh_db)
    now = datetime.now(UTC).replace(microsecond=654321)
    user_id = str(uuid.uuid4())
    await fresh_db.execute(
        "INSERT INTO users (id, email, name, password_hash, created_at, password_changed_at)"
        " VALUES ($1, 'old@example.com', 'Old', 'x', $2, $2)",
        user_id,
        now,
    )
    ages = {"old": timedelta(days=40), "young": timedelta(days=1)}
    ids = {name: str(uuid.uuid4()) for name in ages}
    for name, age in ages.items():
        await fresh_db.execute(
            "INSERT INTO sessions (id, user_id, token_id, created_at, last_used_at, expires_at)"
            " VALUES ($1, $2, 't', $3, $4, $5)",
            ids[name],
            user_id,
            now - age,
            now - timedelta(hours=1),
            now + timedelta(days=6),
        )
    assert [m.version for m in await migrate(fresh_db)] == [m.version for m in MIGRATIONS[1:]]
    sessions = SqlSessionStore(fresh_db)
    old = await sessions.get(ids["old"])
    young = await sessions.get(ids["young"])
    assert old is not None
    assert young is not None
    assert old.ends_at == now - timedelta(days=10)
    assert old.expires_at == old.ends_at
    assert young.ends_at == now + timedelta(days=29)
    assert young.expires_at == now + timedelta(days=6)
    listed = await sessions.live(user_id, now=now)
    assert [r.id for r in listed] == [ids["young"]]

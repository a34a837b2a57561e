"""Migrations: the schema is created once, and running them again changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

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


async def test_concurrent_migrations_apply_each_step_once(fresh_db: Database) -> None:
    results = await asyncio.gather(*(migrate(fresh_db) for _ in range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, len(MIGRATIONS)]
    versions = await fresh_db.fetch("SELECT version FROM schema_migrations")
    assert len(versions) == len(MIGRATIONS)


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

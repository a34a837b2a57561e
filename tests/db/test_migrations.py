"""Migrations: the schema is created once, and running them again changes nothing."""

from __future__ import annotations

import asyncio

from bastion.db import Database
from bastion.db.migrations import MIGRATIONS, migrate, pending

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

"""The PostgreSQL pool is what the settings say: its sizes, its waits, and, behind
PgBouncer, no named prepared statement and no session setting at connection start
(what PgBouncer in transaction mode cannot carry: tests/db/conftest.py runs every
repository test through one)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bastion.db import open_configured
from bastion.db.database import PgTimeouts, PostgresDatabase
from bastion.db.pool import PgPool, pool_arguments
from tests.servers import PgBouncer


def test_a_direct_pool_sends_its_timeouts_as_session_settings() -> None:
    args = pool_arguments(PgPool(1, 4), PgTimeouts(statement=7, command=9, connect=3))
    assert (args["min_size"], args["max_size"]) == (1, 4)
    assert (args["timeout"], args["command_timeout"]) == (3, 9)
    assert args["server_settings"] == {
        "statement_timeout": "7000",
        "idle_in_transaction_session_timeout": "30000",
    }
    assert "statement_cache_size" not in args  # asyncpg's cache: prepared once per connection


def test_a_pool_behind_pgbouncer_names_no_statement_and_sets_nothing_at_start() -> None:
    args = pool_arguments(PgPool(pgbouncer=True), PgTimeouts())
    assert args["statement_cache_size"] == 0
    assert "server_settings" not in args
    assert args["command_timeout"] == PgTimeouts().command  # the client's bound stays


@pytest.mark.parametrize(
    ("sizes", "message"),
    [((0, 0), "at least one"), ((5, 4), "between 0 and"), ((-1, 4), "between 0 and")],
)
def test_impossible_pool_sizes_are_refused(sizes: tuple[int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PgPool(*sizes)


@pytest.mark.parametrize(
    "waits", [{"acquire": 0}, {"connect": -1.0}, {"statement": 10.0, "command": 5.0}]
)
def test_impossible_waits_are_refused(waits: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="timeout"):
        PgTimeouts(**waits)


async def test_the_settings_shape_the_real_pool(
    make_settings: Any, database_route: PgBouncer | None, shared_postgres_url: str
) -> None:
    # PostgreSQL in every pass: the run's (direct or through PgBouncer), else a private one.
    server = {} if database_route else {"database_url": shared_postgres_url}
    settings = make_settings(
        **server,
        database_pool_min=1,
        database_pool_max=3,
        database_statement_timeout=7,
        database_acquire_timeout=4,
        database_connect_timeout=3,
    )
    db = open_configured(settings)
    assert isinstance(db, PostgresDatabase)
    try:
        assert db.pool_config == PgPool(1, 3, pgbouncer=database_route is not None)
        assert db.timeouts == PgTimeouts(statement=7, command=9, acquire=4, connect=3)
        # Four times as many queries at once as connections: the pool grows to 3, no more.
        rows = await asyncio.gather(*(db.fetch("SELECT pg_sleep(0.05) AS s") for _ in range(12)))
        assert len(rows) == 12
        pool = db._pool
        assert (pool.get_min_size(), pool.get_max_size(), pool.get_size()) == (1, 3, 3)
        timeout = (await db.fetchrow("SHOW statement_timeout"))["statement_timeout"]  # type: ignore[index]
        # Direct, Bastion sets it; through PgBouncer, PgBouncer's connect_query does.
        assert timeout == ("7s" if database_route is None else "10s")
    finally:
        await db.close()


async def test_the_app_opens_its_database_with_the_pool_settings(
    start_app: Any, database_route: PgBouncer | None, shared_postgres_url: str
) -> None:
    server = {} if database_route else {"database_url": shared_postgres_url}
    app = await start_app(database_pool_max=4, database_acquire_timeout=3, **server)
    db = app.services.db
    assert isinstance(db, PostgresDatabase)
    assert db.pool_config == PgPool(2, 4, pgbouncer=database_route is not None)
    assert (db.timeouts.acquire, db.timeouts.statement) == (3, 10)

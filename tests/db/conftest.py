"""Fixtures for the repository tests: the app's database (wiped, migrated, seeded) and
a database that has never been migrated, on whichever backend the run uses.

On PostgreSQL every test here runs twice: straight to the server, and through a private
PgBouncer in transaction pooling mode (``BASTION_DATABASE_PGBOUNCER``). The PgBouncer
route is a route to PostgreSQL: the embedded pass, on SQLite, has only the direct one.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from bastion.app import BastionApp
from bastion.db import Database, open_database
from bastion.db.pool import PgPool
from tests.conftest import PG_URL
from tests.servers import PgBouncer

ROUTES = ["direct", "pgbouncer"] if PG_URL else ["direct"]


@pytest.fixture(scope="session")
def pgbouncer(pg_database: str | None) -> Iterator[PgBouncer]:
    """A PgBouncer in front of the run's PostgreSQL server, for the whole run."""
    assert PG_URL, "the PgBouncer route needs BASTION_TEST_DATABASE_URL"
    assert pg_database
    upstream = urlsplit(PG_URL)
    bouncer = PgBouncer(f"{upstream.hostname or '127.0.0.1'}:{upstream.port or 5432}")
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.destroy()


@pytest.fixture(params=ROUTES)
def database_route(request: pytest.FixtureRequest) -> PgBouncer | None:
    """The PgBouncer the app's database is reached through, or ``None`` (direct)."""
    if request.param == "direct":
        return None
    bouncer: PgBouncer = request.getfixturevalue("pgbouncer")
    return bouncer


@pytest.fixture
def make_settings(
    make_settings: Any, database_route: PgBouncer | None, pg_database: str | None
) -> Any:
    if database_route is None or pg_database is None:
        return make_settings
    through = database_route.url(pg_database)

    def make(**overrides: Any) -> Any:
        return make_settings(database_url=through, database_pgbouncer=True, **overrides)

    return make


@pytest.fixture
def db(app: BastionApp) -> Database:
    return app.services.db


@pytest.fixture
async def fresh_db(tmp_path: Path, database_route: PgBouncer | None) -> AsyncIterator[Database]:
    """An empty database: a new SQLite file, or a new PostgreSQL database (reached
    through PgBouncer on that route)."""
    if not PG_URL:
        database = open_database(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
        yield database
        await database.close()
        return
    import asyncpg

    name = f"bastion_fresh_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = f"{PG_URL.rpartition('/')[0]}/{name}"
        if database_route is None:
            database = open_database(url)
        else:
            database = open_database(database_route.url(url), pool=PgPool(pgbouncer=True))
        try:
            yield database
        finally:
            await database.close()
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()

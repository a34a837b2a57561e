"""Fixtures for the repository tests: the app's database (wiped, migrated, seeded) and
a database that has never been migrated, on whichever backend the run uses."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bastion.app import BastionApp
from bastion.db import Database, open_database
from tests.conftest import PG_URL


@pytest.fixture
def db(app: BastionApp) -> Database:
    return app.services.db


@pytest.fixture
async def fresh_db(tmp_path: Path) -> AsyncIterator[Database]:
    """An empty database: a new SQLite file, or a new PostgreSQL database."""
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
        database = open_database(f"{PG_URL.rpartition('/')[0]}/{name}")
        try:
            yield database
        finally:
            await database.close()
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()

"""Test fixtures: the app over SQLite + the in-process store by default, or over
PostgreSQL + Redis when ``BASTION_TEST_DATABASE_URL`` / ``BASTION_TEST_REDIS_URL`` are set
(``.ci/run`` runs the suite both ways)."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from bastion.app import BastionApp, create_app
from bastion.config import Settings, load_settings

PG_URL = os.environ.get("BASTION_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("BASTION_TEST_REDIS_URL")
PASSWORD = "Correct-Horse-Battery-42"

for _name in [
    k for k in os.environ if k.startswith("BASTION_") and not k.startswith("BASTION_TEST_")
]:
    del os.environ[_name]

# Cheap Argon2 for speed; the production cost is tested on its own.
FAST_HASH = {"argon2_memory_kib": 1024, "argon2_time_cost": 1}
UNLIMITED = "1000000/hour"


def backend_label() -> str:
    return f"{'postgresql' if PG_URL else 'sqlite'}+{'redis' if REDIS_URL else 'memory'}"


def pytest_report_header() -> str:
    return f"bastion backends: {backend_label()}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """A fresh PostgreSQL database for the whole run, dropped at the end."""
    if not PG_URL:
        yield None
        return
    import asyncio

    import asyncpg

    name = f"bastion_test_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base, _, _ = PG_URL.rpartition("/")
    yield f"{base}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _wipe(settings: Settings) -> None:
    """Empty every table and the Redis db, so each test starts from nothing."""
    if settings.database_url:
        import asyncpg

        conn = await asyncpg.connect(settings.database_url)
        try:
            exists = await conn.fetchval("SELECT to_regclass('users') IS NOT NULL")
            if exists:
                await conn.execute(
                    "TRUNCATE users, products, promo_codes, orders, order_items, sessions,"
                    " security_events CASCADE"
                )
        finally:
            await conn.close()
    if settings.redis_url:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            await client.flushdb()
        finally:
            await client.aclose()


@pytest.fixture
def make_settings(tmp_path: Path, pg_database: str | None) -> Any:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "var_dir": tmp_path / "var",
            "database_url": pg_database,
            "redis_url": REDIS_URL,
            "rate_limit_global": UNLIMITED,
            "rate_limit_auth": UNLIMITED,
            "lockout": UNLIMITED,
            **FAST_HASH,
        }
        values.update(overrides)
        return load_settings(**values)

    return make


class Client(httpx.AsyncClient):
    """An httpx client bound to the app, with helpers for the common journeys."""

    app: BastionApp

    async def register(
        self, email: str | None = None, password: str = PASSWORD, name: str = "Test User"
    ) -> dict[str, Any]:
        email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
        r = await self.post(
            "/api/auth/register", json={"email": email, "password": password, "name": name}
        )
        assert r.status_code == 201, r.text
        return {**r.json(), "password": password}

    async def login(self, email: str, password: str = PASSWORD) -> str:
        r = await self.post("/api/auth/login", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        return str(r.json()["accessToken"])

    async def user(self, **kwargs: Any) -> dict[str, Any]:
        """A registered, logged-in user: its fields plus ``token`` and ``headers``."""
        user = await self.register(**kwargs)
        token = await self.login(user["email"], user["password"])
        return {**user, "token": token, "headers": {"Authorization": f"Bearer {token}"}}

    async def product_ids(self) -> list[str]:
        r = await self.get("/api/products?limit=100")
        return [p["id"] for p in r.json()["items"]]


def client_for(app: BastionApp, ip: str = "127.0.0.1") -> Client:
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    client = Client(transport=transport, base_url="https://testserver")
    client.app = app
    return client


@pytest.fixture
async def start_app(make_settings: Any) -> AsyncIterator[Any]:
    """``await start_app(**settings)`` -> a running app; all stopped at the end."""
    managers: list[LifespanManager] = []
    first = True

    async def start(**overrides: Any) -> BastionApp:
        nonlocal first
        settings = make_settings(**overrides)
        if first:
            await _wipe(settings)
            first = False
        app = create_app(settings)
        manager = LifespanManager(app, startup_timeout=30, shutdown_timeout=30)  # type: ignore[arg-type]
        await manager.__aenter__()
        managers.append(manager)
        return app

    yield start
    for manager in reversed(managers):
        await manager.__aexit__(None, None, None)


@pytest.fixture
async def app(start_app: Any) -> BastionApp:
    return await start_app()  # type: ignore[no-any-return]


@pytest.fixture
async def client(app: BastionApp) -> AsyncIterator[Client]:
    async with client_for(app) as c:
        yield c

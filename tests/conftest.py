"""Test fixtures: the app over SQLite + the in-process store by default, or over
PostgreSQL + Redis when ``BASTION_TEST_DATABASE_URL`` / ``BASTION_TEST_REDIS_URL`` are set
(``.ci/run`` runs the suite both ways)."""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from bastion.app import BastionApp, create_app
from bastion.config import Settings, load_settings
from tests.auth.conftest import SECRETS, Device, record_events, refresh_cookie_of
from tests.databases import scratch_postgres
from tests.servers import PostgresCluster, RedisClusterServers, RedisServer

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


# Tests that need a real server in every pass are marked by the fixtures they use (the
# configured server when there is one, else a private one started for them): nothing is
# deselected or skipped for want of a server; a missing binary fails the test.
# ``-m "not postgres"`` leaves them out, by choice, on a machine without PostgreSQL.
SERVER_MARKERS = {
    "postgres": ("shared_postgres_url", "postgres", "frozen_database"),
    "redis": ("shared_redis_url", "redis_server", "shared_cluster_url"),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        for marker, needs in SERVER_MARKERS.items():
            if fixtures.intersection(needs):
                item.add_marker(marker)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under ``CI=true`` a skipped test fails the run: in CI every test must run (its
    servers are started for it), so a skip is a test gone missing, not a pass."""
    if os.environ.get("CI") != "true" or exitstatus != pytest.ExitCode.OK:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        names = ", ".join(sorted(r.nodeid for r in skipped))
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(
                f"CI=true: {len(skipped)} test(s) skipped, which CI forbids: {names}"
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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


@pytest.fixture(scope="session")
def shared_postgres_url(pg_database: str | None) -> Iterator[str]:
    """A PostgreSQL database for the tests that need one in every pass (several
    processes sharing it): this run's when ``BASTION_TEST_DATABASE_URL`` is set, else a
    scratch database on a private cluster started for the run (about two seconds)."""
    if pg_database:
        yield pg_database
        return
    cluster = PostgresCluster()
    try:
        cluster.start()
        with scratch_postgres(cluster.url(), "bastion_shared") as url:
            yield url
    finally:
        cluster.destroy()


async def _wipe(settings: Settings) -> None:
    """Empty every table and the Redis db, so each test starts from nothing."""
    if settings.database_url:
        import asyncpg

        # No named statements: the URL may be a PgBouncer in transaction mode.
        conn = await asyncpg.connect(settings.database_url, statement_cache_size=0)
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
        await flush_redis(settings.redis_url)


async def flush_redis(url: str) -> None:
    """Empty the Redis db of ``url``; on a (private) cluster, every master's."""
    from bastion.store.urls import is_cluster_url

    if is_cluster_url(url):
        from redis.asyncio.cluster import RedisCluster

        from bastion.store.cluster import open_cluster

        cluster = open_cluster(url, timeout=5)
        try:
            await cluster.flushdb(target_nodes=RedisCluster.PRIMARIES)
        finally:
            await cluster.aclose()
        return
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
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
        """A login as a new device: the jar's refresh cookie from an earlier login is not
        sent (a login that carries one ends that session, as a browser's would)."""
        self.cookies.delete("__Secure-refreshToken")
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


# ------------------------------------------------------- shared by several directories
# (tests/attacks/ holds attacks moved out of api/, auth/ and security/; the fixtures
# those tests share with the directories they came from live here.)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean environment whose var/ is a temporary directory."""
    monkeypatch.setenv("BASTION_VAR_DIR", str(tmp_path / "var"))
    return monkeypatch


PRODUCTION_SECRETS = {"access_secret": "a" * 40, "refresh_secret": "b" * 40}


@pytest.fixture
async def production(start_app: Any) -> BastionApp:
    """The app in production mode (no introspection, no demo catalogue)."""
    return await start_app(env="production", **PRODUCTION_SECRETS)  # type: ignore[no-any-return]


@pytest.fixture
def events(app: BastionApp) -> list[dict[str, Any]]:
    """Every security event the app emits from now on (the stored sink still gets them)."""
    return record_events(app)


class CountingDatabase:
    """The app's database, counting the statements sent through it (security events,
    written in the background, are left out)."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.statements: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def _count(self, sql: str) -> None:
        if "security_events" not in sql:
            self.statements.append(sql)

    async def fetch(self, sql: str, *args: Any) -> Any:
        self._count(sql)
        return await self._db.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        self._count(sql)
        return await self._db.fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> Any:
        self._count(sql)
        return await self._db.execute(sql, *args)

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> Any:
        self._count(sql)
        return await self._db.executemany(sql, args)

    def reset(self) -> None:
        self.statements.clear()


@pytest.fixture
def statements(app: BastionApp) -> Iterator[CountingDatabase]:
    """The app's database, counting from now on; ``statements.reset()`` starts again."""
    real = app.services.db
    counting = CountingDatabase(real)
    app.services.db = counting  # type: ignore[assignment]
    yield counting
    app.services.db = real


# ---------------------------------------------------- sessions (helpers: tests/auth/)


@pytest.fixture
async def auth_app(start_app: Any) -> BastionApp:
    app: BastionApp = await start_app(**SECRETS)
    return app


@pytest.fixture
async def sign_in(auth_app: BastionApp) -> Any:
    """``await sign_in(email, ip=..., user_agent=...)`` -> a new :class:`Device`."""
    clients: list[Client] = []

    async def go(
        email: str, password: str, *, ip: str = "127.0.0.1", user_agent: str = "test-agent/1.0"
    ) -> Device:
        client = client_for(auth_app, ip=ip)
        client.headers["User-Agent"] = user_agent
        clients.append(client)
        r = await client.post("/api/auth/login", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        # The jar would send the cookie too; devices send theirs explicitly instead.
        client.cookies.clear()
        return Device(client, r.json()["accessToken"], refresh_cookie_of(r))

    yield go
    for c in clients:
        await c.aclose()


@pytest.fixture
async def account(auth_app: BastionApp) -> dict[str, Any]:
    """A registered account: ``email`` and ``password``."""
    async with client_for(auth_app) as c:
        return await c.register(email=f"user-{uuid.uuid4().hex[:10]}@example.com")


@pytest.fixture
async def two_users(
    auth_app: BastionApp, sign_in: Callable[..., Awaitable[Device]]
) -> tuple[list[Device], Device, dict[str, Any]]:
    """Three devices of one user (the first one refreshed once: an ended session must
    take its older access tokens with it) and one device of another user."""
    async with client_for(auth_app) as c:
        mine = await c.register()
        other = await c.register()
    devices = [await sign_in(mine["email"], mine["password"]) for _ in range(3)]
    assert await devices[0].refresh() == 200
    return devices, await sign_in(other["email"], other["password"]), mine


# ----------------------------------------- abuse defences (helpers: tests/security/)
# Both store backends in every run: the "redis" backend is ``BASTION_TEST_REDIS_URL``
# when it is set, else a private ``redis-server`` started for the session, so the default
# run proves the Redis store too. Nothing here ever skips.

StartApp = Callable[..., Awaitable[BastionApp]]
Clients = Callable[[BastionApp, str], Client]


@pytest.fixture(scope="session")
def shared_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if REDIS_URL:
        yield REDIS_URL
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url(0)
    finally:
        server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private Redis for this test alone, which it may stop, freeze and restart
    without disturbing anyone."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def shared_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Redis Cluster (3 masters, 3 replicas) for the whole run, in both runs:
    started on first use (about 2 s)."""
    with RedisClusterServers(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster.url()


# Tests of exact counting run on the cluster too: ``@pytest.mark.parametrize("backend",
# ON_EVERY_STORE, indirect=True)``.
ON_EVERY_STORE = ["memory", "redis", "cluster"]


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest, shared_redis_url: str) -> str | None:
    """The store URL of the backend under test: ``None`` (in-process), a Redis URL, or
    (where a test asks for ``"cluster"``) the private cluster's URL."""
    if request.param == "cluster":
        return str(request.getfixturevalue("shared_cluster_url"))
    return shared_redis_url if request.param == "redis" else None


@pytest.fixture
def start_guarded(start_app: StartApp, backend: str | None) -> StartApp:
    """``start_app`` on the backend under test."""

    async def start(**overrides: Any) -> BastionApp:
        return await start_app(**{"redis_url": backend, **overrides})

    return start


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    """``clients(app, ip)``: a client from that peer address, closed at the end."""
    opened: list[Client] = []

    def make(app: BastionApp, ip: str = "127.0.0.1") -> Client:
        client = client_for(app, ip)
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.aclose()


class Clock:
    """A clock the test moves: real time at first, then ``advance``d (a token codec's
    or the sessions' ``clock``, moved instead of slept through)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

"""Dependencies a test may break: a private PostgreSQL cluster on a free port (never the
shared server other tests use), and a production-like ``bastion serve`` on it and on a
private Redis (``redis_server``, from tests/conftest.py).

The database behind the Redis fault follows the run: SQLite on the default run, the
private PostgreSQL cluster on the PostgreSQL + Redis run. The PostgreSQL fault needs
its own cluster, so it runs on both. A missing ``redis-server`` or PostgreSQL binary
fails these tests; nothing here skips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_URL
from tests.servers import BastionServer, PostgresCluster, RedisServer, production_env

GLOBAL_LIMIT = 30


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


MakeServer = Callable[[str | None], BastionServer]


@pytest.fixture
def make_server(tmp_path: Path, redis_server: RedisServer) -> Iterator[MakeServer]:
    """``make_server(database_url)``: a started production-mode server on the private
    Redis and that database (``None``: SQLite in its working directory), the demo
    catalogue seeded, trusting loopback's ``X-Forwarded-For``."""
    servers: list[BastionServer] = []

    def make(database_url: str | None) -> BastionServer:
        env = {
            **production_env(),
            "BASTION_REDIS_URL": redis_server.url(0),
            "BASTION_TRUSTED_PROXIES": "127.0.0.1/32,::1/128",
            "BASTION_RATE_LIMIT_GLOBAL": f"{GLOBAL_LIMIT}/minute",
            "BASTION_RATE_LIMIT_AUTH": "100000/hour",
            "BASTION_LOCKOUT": "100000/hour",
        }
        if database_url:
            env["BASTION_DATABASE_URL"] = database_url
        server = BastionServer(tmp_path / f"server{len(servers)}", env)
        servers.append(server)
        server.cli("seed-demo")  # production serves no demo data by itself
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def run_database(request: pytest.FixtureRequest) -> str | None:
    """This run's kind of database for the Redis fault: SQLite, or the private cluster."""
    if not PG_URL:
        return None
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.url()

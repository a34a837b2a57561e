"""Two real ``bastion serve`` processes sharing one Redis (or one Redis Cluster) and one
database enforce one budget between them, exactly; and several workers without Redis
are refused.

The shared database is PostgreSQL on the PostgreSQL + Redis run, and one SQLite file on
the default run (with a private Redis), so this runs, and can fail, on both."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD, REDIS_URL, flush_redis
from tests.security.conftest import WRONG, environ_without_bastion
from tests.servers import RedisServer, free_port

BASTION = str(Path(sys.executable).with_name("bastion"))


class Server:
    def __init__(self, cwd: Path, env: dict[str, str], name: str) -> None:
        self.port = free_port()
        self.log = cwd / f"{name}.log"
        self.url = f"http://127.0.0.1:{self.port}"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [BASTION, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as client:
            while True:
                assert self.process.poll() is None, f"server exited:\n{self.log.read_text()}"
                try:
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"never ready:\n{self.log.read_text()}"
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture(params=["redis", "cluster"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The configured Redis on the PostgreSQL + Redis run, else a private one; or the
    run's private Redis Cluster."""
    if request.param == "cluster":
        yield str(request.getfixturevalue("shared_cluster_url"))
        return
    if REDIS_URL:
        yield REDIS_URL
        return
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server.url(0)
    finally:
        server.stop()


@pytest.fixture
async def two_servers(
    tmp_path: Path, shared_store: str, pg_database: str | None
) -> AsyncIterator[list[Server]]:
    await flush_redis(shared_store)
    env = environ_without_bastion() | {
        "BASTION_REDIS_URL": shared_store,
        "BASTION_ACCESS_SECRET": secrets.token_urlsafe(48),
        "BASTION_REFRESH_SECRET": secrets.token_urlsafe(48),
        "BASTION_RATE_LIMIT_GLOBAL": "25/minute",
        "BASTION_RATE_LIMIT_AUTH": "4/hour",
        "BASTION_LOCKOUT": "1000000/hour",
        "BASTION_ARGON2_MEMORY_KIB": "1024",
        "BASTION_ARGON2_TIME_COST": "1",
        "BASTION_SHUTDOWN_DRAIN": "0",  # stop at once on SIGTERM
    }
    if pg_database:
        env["BASTION_DATABASE_URL"] = pg_database
    servers: list[Server] = []
    try:
        for name in ("a", "b"):  # one after the other: the first one migrates
            server = Server(tmp_path, env, name)
            servers.append(server)
            await server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


async def test_two_processes_enforce_one_budget_between_them(two_servers: list[Server]) -> None:
    a, b = two_servers
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient() as reader, httpx.AsyncClient(transport=transport) as guesser:
        # Global limit: 60 concurrent requests spread over both processes, 25 pass.
        responses = await asyncio.gather(
            *(reader.get(f"{(a, b)[i % 2].url}/api/products") for i in range(60))
        )
        assert Counter(r.status_code for r in responses) == {200: 25, 429: 35}
        assert {r.headers["ratelimit-policy"] for r in responses} == {'"global";q=25;w=60'}

        # Auth limit, from another address: 20 concurrent wrong guesses, 4 judged.
        body = {"email": "victim@example.com", "password": WRONG}
        guesses = await asyncio.gather(
            *(guesser.post(f"{(a, b)[i % 2].url}/api/auth/login", json=body) for i in range(20))
        )
        assert Counter(r.status_code for r in guesses) == {401: 4, 429: 16}

    # A user registered on one process signs in on the other.
    async with httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(local_address="127.0.0.3")
    ) as c:
        email = f"shared-{secrets.token_hex(4)}@example.com"
        r = await c.post(
            f"{a.url}/api/auth/register",
            json={"email": email, "password": PASSWORD, "name": "Shared"},
        )
        assert r.status_code == 201, r.text
        r = await c.post(f"{b.url}/api/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({}, "BASTION_REDIS_URL"),
        ({"BASTION_REDIS_URL": "redis://127.0.0.1:6379/0"}, "BASTION_DATABASE_URL"),
    ],
)
def test_several_workers_without_shared_state_are_refused(
    tmp_path: Path, env: dict[str, str], missing: str
) -> None:
    result = subprocess.run(
        [BASTION, "serve", "--workers", "2", "--port", str(free_port())],
        cwd=tmp_path,
        env=environ_without_bastion() | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    message = " ".join((result.stdout + result.stderr).split())
    assert "refusing to start" in message
    assert missing in message

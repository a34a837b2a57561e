"""Ending a session ends it on every instance: two real ``bastion serve`` processes share
PostgreSQL and Redis; a session ended through one is refused by the other on the very
next request (the contract allows a second).

Needs PostgreSQL and Redis, so it runs in every pass on servers both processes share:
this run's when they are configured, else private ones started for the run
(``shared_postgres_url``, ``shared_redis_url``). A server that cannot be started or
reached fails the fixtures: nothing is skipped.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conftest import ACCESS_SECRET, REFRESH_COOKIE, REFRESH_SECRET, claims_of
from tests.conftest import PASSWORD

NEW_PASSWORD = "Another-Long-Passphrase-77"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(tmp: Path, name: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = _free_port()
    log = tmp / f"{name}.log"
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "bastion"), "serve", "--port", str(port)],
            cwd=tmp,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, f"http://127.0.0.1:{port}", log


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never became ready:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def instances(
    shared_postgres_url: str, shared_redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """Two instances of the service on PostgreSQL + Redis, with the same secrets."""
    import redis

    with redis.Redis.from_url(shared_redis_url, socket_connect_timeout=5) as probe:
        probe.ping()  # unreachable: fail here, at once
    tmp = tmp_path_factory.mktemp("instances")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "BASTION_DATABASE_URL": shared_postgres_url,
        "BASTION_REDIS_URL": shared_redis_url,
        "BASTION_ACCESS_SECRET": ACCESS_SECRET,
        "BASTION_REFRESH_SECRET": REFRESH_SECRET,
        "BASTION_ARGON2_MEMORY_KIB": "1024",
        "BASTION_ARGON2_TIME_COST": "1",
        "BASTION_SHUTDOWN_DRAIN": "0",  # stop at once on SIGTERM
        "BASTION_RATE_LIMIT_GLOBAL": "1000000/hour",
        "BASTION_RATE_LIMIT_AUTH": "1000000/hour",
        "BASTION_LOCKOUT": "1000000/hour",
    }
    started = [_serve(tmp, name, env) for name in ("a", "b")]
    try:
        for proc, url, log in started:
            _wait_ready(proc, url, log)
        yield [url for _, url, _ in started]
    finally:
        for proc, _, _ in started:
            proc.terminate()
        for proc, _, _ in started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
async def clients(
    instances: list[str],
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with (
        httpx.AsyncClient(base_url=instances[0], timeout=10) as a,
        httpx.AsyncClient(base_url=instances[1], timeout=10) as b,
    ):
        yield a, b


class Session:
    def __init__(self, login: httpx.Response) -> None:
        assert login.status_code == 200, login.text
        self.access: str = login.json()["accessToken"]
        # Plain HTTP: the client keeps no Secure cookie, so the test carries it.
        cookie = next(
            c for c in login.headers.get_list("set-cookie") if c.startswith(REFRESH_COOKIE)
        )
        self.refresh = cookie.split(";", 1)[0].split("=", 1)[1]
        self.sid: str = claims_of(self.access)["sid"]

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}

    @property
    def cookie(self) -> dict[str, str]:
        return {"Cookie": f"{REFRESH_COOKIE}={self.refresh}"}


async def _account(client: httpx.AsyncClient) -> str:
    email = f"user-{os.urandom(5).hex()}@example.com"
    r = await client.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "Two Hosts"}
    )
    assert r.status_code == 201, r.text
    return email


async def _login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> Session:
    r = await client.post("/api/auth/login", json={"email": email, "password": password})
    return Session(r)


async def _end(action: str, b: httpx.AsyncClient, victim: Session, keeper: Session) -> None:
    """End sessions through instance B, the way ``action`` does."""
    if action == "logout":
        r = await b.post("/api/auth/logout", headers=victim.cookie)
    elif action == "logout-all":
        r = await b.post("/api/auth/logout-all", headers=keeper.bearer)
    elif action == "delete-session":
        r = await b.delete(f"/api/auth/sessions/{victim.sid}", headers=keeper.bearer)
    else:
        r = await b.post(
            "/api/users/me/password",
            json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
            headers=keeper.bearer,
        )
    assert r.status_code == 204, r.text


@pytest.mark.parametrize(
    ("action", "keeper_survives"),
    [("logout", True), ("logout-all", False), ("delete-session", True), ("password-change", True)],
)
async def test_a_session_ended_on_one_instance_is_refused_by_the_other_at_once(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], action: str, keeper_survives: bool
) -> None:
    a, b = clients
    email = await _account(a)
    victim, keeper = await _login(a, email), await _login(a, email)
    bystander = await _login(a, await _account(b))

    async def on(client: httpx.AsyncClient, *sessions: Session) -> list[int]:
        got = await asyncio.gather(
            *(client.get("/api/users/me", headers=s.bearer) for s in sessions)
        )
        return [r.status_code for r in got]

    assert await on(a, victim, keeper, bystander) == [200, 200, 200]
    assert await on(b, victim, keeper, bystander) == [200, 200, 200]
    await _end(action, b, victim, keeper)

    keeper_status = 200 if keeper_survives else 401
    assert await on(a, victim, keeper, bystander) == [401, keeper_status, 200]
    refreshed = await a.post("/api/auth/refresh", headers=victim.cookie)
    assert refreshed.status_code == 401
    assert await on(b, victim, keeper, bystander) == [401, keeper_status, 200]


async def test_reuse_detected_on_one_instance_ends_the_family_on_the_other(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = clients
    email = await _account(a)
    session = await _login(a, email)
    rotated = await a.post("/api/auth/refresh", headers=session.cookie)
    assert rotated.status_code == 200
    fresh = Session(rotated)
    replay = await b.post("/api/auth/refresh", headers=session.cookie)
    assert replay.status_code == 401
    me: Any = await a.get("/api/users/me", headers=fresh.bearer)
    assert me.status_code == 401
    assert (await a.post("/api/auth/refresh", headers=fresh.cookie)).status_code == 401

"""Fixtures for the abuse-defence tests: both store backends in every run, and private
Redis servers that a test may stop, freeze and restart.

The "redis" backend is ``BASTION_TEST_REDIS_URL`` when it is set, else a private
``redis-server`` started for the session, so the default run proves the Redis store too.
A missing ``redis-server`` or an unreachable configured Redis fails the tests; nothing
here ever skips.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import argon2
import pytest

from bastion.app import BastionApp
from bastion.security.passwords import HasherConfig, PasswordHasher
from tests.conftest import REDIS_URL, Client, client_for

WRONG = "Wrong-Password-123456"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A private ``redis-server`` on a free port, without persistence."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; these tests need it")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _pong(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Kill it outright (SIGKILL): connections drop as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections, but nothing ever answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private Redis for this test alone (so that stopping it disturbs nobody)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


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


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest, shared_redis_url: str) -> str | None:
    """The store URL of the backend under test: ``None`` (in-process) or a Redis URL."""
    return shared_redis_url if request.param == "redis" else None


StartApp = Callable[..., Awaitable[BastionApp]]


@pytest.fixture
def start_guarded(start_app: StartApp, backend: str | None) -> StartApp:
    """``start_app`` on the backend under test."""

    async def start(**overrides: Any) -> BastionApp:
        return await start_app(**{"redis_url": backend, **overrides})

    return start


@pytest.fixture
async def clients() -> AsyncIterator[Callable[[BastionApp, str], Client]]:
    """``clients(app, ip)``: a client from that peer address, closed at the end."""
    opened: list[Client] = []

    def make(app: BastionApp, ip: str = "127.0.0.1") -> Client:
        client = client_for(app, ip)
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.aclose()


def environ_without_bastion() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}


def record_events(app: BastionApp) -> list[dict[str, Any]]:
    """Every security event ``app`` emits from now on (its own sink still gets them)."""
    recorded: list[dict[str, Any]] = []
    log = app.services.events
    downstream = log.sink

    def tee(record: dict[str, Any]) -> None:
        recorded.append(record)
        if downstream is not None:
            downstream(record)

    log.sink = tee
    return recorded


_MEMBER = re.compile(r'^"([a-z]+)";(q|r)=(\d+);(w|t)=(\d+)$')


def ratelimit_fields(headers: Any) -> dict[str, dict[str, int]]:
    """``RateLimit-Policy`` and ``RateLimit`` parsed strictly (draft-ietf-httpapi-
    ratelimit-headers-10): ``{"global": {"q": 100, "w": 900, "r": 99, "t": 900}}``."""
    out: dict[str, dict[str, int]] = {}
    for field, params in (("ratelimit-policy", ("q", "w")), ("ratelimit", ("r", "t"))):
        values = headers.get_list(field)
        assert len(values) == 1, f"{field}: {values}"
        for member in values[0].split(", "):
            match = _MEMBER.match(member)
            assert match is not None, f"{field}: bad member {member!r}"
            name, p1, v1, p2, v2 = match.groups()
            assert (p1, p2) == params, f"{field}: {member!r}"
            out.setdefault(name, {}).update({p1: int(v1), p2: int(v2)})
    return out


class GatedArgon:
    """argon2's interface over a real (cheap) hasher, whose ``verify`` counts its calls
    and, while ``gate`` is closed, waits for it: the test decides when hashes finish."""

    def __init__(self, *, closed: bool = False) -> None:
        self.inner = argon2.PasswordHasher(memory_cost=1024, time_cost=1, parallelism=1)
        self.gate = threading.Event()
        if not closed:
            self.gate.set()
        self.verifies = 0
        self._lock = threading.Lock()

    def hash(self, password: str) -> str:
        return self.inner.hash(password)

    def verify(self, hash: str, password: str) -> bool:
        with self._lock:
            self.verifies += 1
        if not self.gate.wait(timeout=30):
            raise RuntimeError("the test never opened the gate")
        return self.inner.verify(hash, password)

    def check_needs_rehash(self, hash: str) -> bool:
        return self.inner.check_needs_rehash(hash)


async def install_hasher(
    app: BastionApp, argon: GatedArgon, *, concurrency: int = 2, queue: int = 64
) -> PasswordHasher:
    """Give ``app`` a hasher over ``argon`` (its dummy hash computed already)."""
    hasher = PasswordHasher(HasherConfig(concurrency=concurrency, queue=queue), argon=argon)
    await hasher.warm_up()
    old, app.services.hasher = app.services.hasher, hasher
    old.close()
    return hasher


async def wait_until(condition: Callable[[], bool], what: str = "condition") -> None:
    """Poll ``condition`` (a state the test drives to, not a speed) for up to 20 s."""
    deadline = time.monotonic() + 20
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never reached: {what}")
        await asyncio.sleep(0.005)

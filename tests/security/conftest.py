"""Helpers for the abuse-defence tests: events, the RateLimit fields, a hasher the test
holds back.

The fixtures that run a test on both store backends (``backend``, ``start_guarded``,
``clients``) and the private Redis a test may stop, freeze and restart
(``redis_server``) are in tests/conftest.py, shared with tests/attacks/ and
tests/faults/.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import argon2
import pytest

from bastion.app import BastionApp
from bastion.security.passwords import HasherConfig, PasswordHasher
from bastion.store import MemoryStore, Store
from bastion.store.redis import RedisStore
from tests.conftest import flush_redis

WRONG = "Wrong-Password-123456"


def environ_without_bastion() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}


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

    def __init__(
        self,
        *,
        closed: bool = False,
        ungated: frozenset[str] = frozenset(),
        gates: Mapping[str, threading.Event] | None = None,
    ) -> None:
        self.inner = argon2.PasswordHasher(memory_cost=1024, time_cost=1, parallelism=1)
        self.ungated = ungated  # passwords whose checks never wait for the gate
        self.gates = dict(gates or {})  # passwords whose checks wait for a gate of their own
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
        gate = self.gates.get(password, self.gate)
        if password not in self.ungated and not gate.wait(timeout=30):
            raise RuntimeError("the test never opened the gate")
        return self.inner.verify(hash, password)

    def check_needs_rehash(self, hash: str) -> bool:
        return self.inner.check_needs_rehash(hash)


async def install_hasher(
    app: BastionApp,
    argon: GatedArgon,
    *,
    concurrency: int = 2,
    queue: int = 64,
    max_wait: float = 30.0,
) -> PasswordHasher:
    """Give ``app`` a hasher over ``argon`` (its dummy hash computed already); its places
    wait up to ``max_wait`` in line (by default longer than any test holds a gate)."""
    config = HasherConfig(concurrency=concurrency, queue=queue, max_wait=max_wait)
    hasher = PasswordHasher(config, argon=argon)
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


# ------------------------------------------- second factors (test_totp, test_challenges)


@pytest.fixture(params=["memory", "redis"])
async def shared_store(
    request: pytest.FixtureRequest, shared_redis_url: str
) -> AsyncIterator[Callable[[], Store]]:
    """``shared_store()``: one more client of one store, as each instance of a service
    has its own (the in-process store: the same object, one process being one
    instance's worth; Redis: a new connection to the same, emptied, database)."""
    if request.param == "memory":
        memory = MemoryStore()
        yield lambda: memory
        return
    await flush_redis(shared_redis_url)
    opened: list[RedisStore] = []

    def connect() -> Store:
        opened.append(RedisStore.from_url(shared_redis_url))
        return opened[-1]

    yield connect
    for store in opened:
        await store.aclose()

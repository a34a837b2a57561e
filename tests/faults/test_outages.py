"""A real server under steady traffic while Redis dies and comes back, and while
PostgreSQL stops and starts again: never a 500, never a hang, every 503 with
``Retry-After``, the global limit still enforced, ``/readyz`` telling the truth at every
step, and service back to normal by itself once the dependency is."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.databases import scratch_postgres
from tests.faults.conftest import GLOBAL_LIMIT, MakeServer
from tests.faults.traffic import KINDS, Outcome, Traffic, probe_global_limit, sign_up, statuses
from tests.servers import PostgresCluster, RedisServer

# Whatever happens, the server answers within a few seconds and never with a 5xx other
# than 503; the dependency coming back must show in /readyz within this long.
RECOVERY = 15.0
OK = {"catalogue": {200}, "orders.list": {200}, "orders.create": {201}, "login": {200}}


def assert_never_broken(outcomes: list[Outcome]) -> None:
    assert outcomes, "no traffic was sent"
    for o in outcomes:
        assert o.status is not None, f"{o.kind} got no answer in {o.sent_in}: {o.error}"
        assert o.status < 500 or o.status == 503, f"{o.kind} -> {o.status}: {o.body}"
        assert o.status != 429, f"{o.kind} was rate limited: {o.body}"  # every IP is fresh
        if o.status == 503 and o.kind != "readyz":
            assert int(o.headers["retry-after"]) >= 1, o
            assert o.headers["content-type"] == "application/problem+json", o


def assert_phase(traffic: Traffic, phase: str, expected: dict[str, set[int]]) -> None:
    seen = statuses(traffic.in_phase(phase))
    for kind in KINDS:
        assert seen.get(kind), f"no {kind} request ran entirely while {phase}"
        if kind in expected:
            assert set(seen[kind]) <= expected[kind], f"{phase}: {kind} -> {dict(seen[kind])}"


def readiness(database: str, store: str) -> Any:
    """A ``/readyz`` answer saying exactly this about the database and the store."""

    def check(r: httpx.Response) -> bool:
        body = r.json()
        ok = database == store == "ok"
        return (r.status_code == 200 if ok else r.status_code == 503) and (
            body["database"],
            body["store"],
        ) == (database, store)

    return check


def assert_global_limit_holds(statuses_: list[int], *, allowed: set[int]) -> None:
    assert set(statuses_[:GLOBAL_LIMIT]) <= allowed, statuses_
    assert statuses_[GLOBAL_LIMIT:] == [429] * 5, statuses_


@pytest.fixture
def redis_fault_database(run_database: str | None) -> Iterator[str | None]:
    if run_database is None:
        yield None
        return
    with scratch_postgres(run_database, "bastion_faults") as url:
        yield url


async def test_traffic_survives_redis_dying_and_coming_back(
    make_server: MakeServer, redis_server: RedisServer, redis_fault_database: str | None
) -> None:
    server = make_server(redis_fault_database)
    async with httpx.AsyncClient(base_url=server.url) as client:
        account = await sign_up(client, f"redis-{uuid.uuid4().hex[:8]}")
    assert_global_limit_holds(await probe_global_limit(server.url, GLOBAL_LIMIT), allowed={200})

    async with Traffic(server.url, account) as traffic:
        await traffic.run_for(1.5)
        traffic.phase = "redis dying"
        redis_server.stop()
        await traffic.until(readiness("ok", "unavailable"), within=RECOVERY)
        traffic.phase = "redis down"
        await traffic.run_for(2)
        # The shared budget is out of reach: each process keeps one of its own.
        assert_global_limit_holds(await probe_global_limit(server.url, GLOBAL_LIMIT), allowed={200})
        traffic.phase = "redis coming back"
        redis_server.start()
        await traffic.until(readiness("ok", "ok"), within=RECOVERY)
        traffic.phase = "recovered"
        await traffic.run_for(1.5)

    assert_never_broken(traffic.outcomes)
    assert_phase(traffic, "up", {**OK, "readyz": {200}})
    # Sign-in fails closed (503, never a skipped limit); everything else carries on.
    assert_phase(traffic, "redis down", {**OK, "login": {503}, "readyz": {503}})
    assert_phase(traffic, "recovered", {**OK, "readyz": {200}})
    assert_global_limit_holds(await probe_global_limit(server.url, GLOBAL_LIMIT), allowed={200})
    assert server.running


@pytest.fixture
def postgres_database(postgres: PostgresCluster) -> Iterator[str]:
    with scratch_postgres(postgres.url(), "bastion_faults") as url:
        yield url


async def test_traffic_survives_postgresql_stopping_and_starting(
    postgres: PostgresCluster, postgres_database: str, make_server: MakeServer
) -> None:
    server = make_server(postgres_database)
    async with httpx.AsyncClient(base_url=server.url) as client:
        account = await sign_up(client, f"pg-{uuid.uuid4().hex[:8]}")

    async with Traffic(server.url, account) as traffic:
        await traffic.run_for(1.5)
        traffic.phase = "postgresql stopping"
        postgres.stop()
        await traffic.until(readiness("unavailable", "ok"), within=RECOVERY)
        traffic.phase = "postgresql down"
        await traffic.run_for(2)
        # Limits live in the store: the database being down changes nothing there.
        assert_global_limit_holds(
            await probe_global_limit(server.url, GLOBAL_LIMIT), allowed={200, 503}
        )
        traffic.phase = "postgresql coming back"
        postgres.start()
        await traffic.until(readiness("ok", "ok"), within=RECOVERY)
        traffic.phase = "recovered"
        await traffic.run_for(1.5)

    assert_never_broken(traffic.outcomes)
    assert_phase(traffic, "up", {**OK, "readyz": {200}})
    # What needs the database says so (503 with Retry-After); a catalogue page may
    # still come from the one-second page cache.
    assert_phase(
        traffic,
        "postgresql down",
        {
            "catalogue": {200, 503},
            "orders.list": {503},
            "orders.create": {503},
            "login": {503},
            "readyz": {503},
        },
    )
    assert_phase(traffic, "recovered", {**OK, "readyz": {200}})
    assert server.running
    server.stop()

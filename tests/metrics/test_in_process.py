"""The metrics that a scrape of healthy traffic cannot show: a store that goes down (its
errors, its circuit, the revocation sync falling behind), a database that fails, a
hasher that sheds attempts. In-process, on the app's own registry (no multiprocess
directory: the values are the same objects a worker writes to its files)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from bastion.app import BastionApp
from bastion.db import DatabaseUnavailable
from bastion.metrics.dependencies import MeteredDatabase
from bastion.metrics.instrument import sample
from bastion.metrics.registry import Metrics
from tests.conftest import PASSWORD, Clients, StartApp
from tests.security.conftest import WRONG
from tests.servers import RedisServer

ON = "127.0.0.1:9464"  # any address: in-process, it only turns the metrics on


def read(app: BastionApp, name: str, **labels: str) -> float:
    metrics = app.services.metrics
    assert metrics is not None
    found = metrics.registry.get_sample_value(name, labels)
    return found if found is not None else 0.0


def resample(app: BastionApp) -> None:
    metrics = app.services.metrics
    assert metrics is not None
    sample(metrics, app.services, lambda: 0)


async def test_a_store_outage_counts_errors_opens_the_circuit_and_lets_the_sync_lag(
    start_app: StartApp, clients: Clients, redis_server: RedisServer
) -> None:
    app = await start_app(redis_url=redis_server.url(), metrics_address=ON)
    client = clients(app, "203.0.113.9")
    assert (await client.get("/api/products")).status_code == 200
    resample(app)
    assert read(app, "bastion_store_errors_total") == 0
    assert read(app, "bastion_store_circuit_open") == 0
    assert read(app, "bastion_revocation_sync_lag_seconds") < 2

    redis_server.stop()
    for _ in range(3):
        await client.get("/api/products")  # the global limit falls back to per-process
    await asyncio.sleep(1.6)  # the revocation sync fails once a second meanwhile
    resample(app)
    assert read(app, "bastion_store_errors_total") >= 3
    assert read(app, "bastion_store_circuit_open") == 1
    assert read(app, "bastion_revocation_sync_lag_seconds") > 1.5

    redis_server.start()
    deadline = time.monotonic() + 10
    while read(app, "bastion_store_circuit_open") == 1 and time.monotonic() < deadline:
        await client.get("/api/products")
        await asyncio.sleep(0.2)
        resample(app)
    assert read(app, "bastion_store_circuit_open") == 0


async def test_database_failures_are_counted_and_raised_unchanged() -> None:
    metrics = Metrics()

    class Down:
        dialect = "sqlite"

        async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
            raise DatabaseUnavailable("connection refused")

    db = MeteredDatabase(Down(), metrics.database_errors)  # type: ignore[arg-type]
    for _ in range(2):
        with pytest.raises(DatabaseUnavailable, match="connection refused"):
            await db.fetch("SELECT 1")
    assert metrics.registry.get_sample_value("bastion_database_errors_total") == 2


async def test_attempts_the_hasher_sheds_are_counted(start_app: StartApp, clients: Clients) -> None:
    app = await start_app(metrics_address=ON, hash_concurrency=1, hash_queue=0)
    hasher = app.services.hasher
    places = [hasher.admit(), hasher.admit(trusted=True)]  # every slot of both classes
    try:
        shed = [
            await clients(app, f"203.0.113.{i}").post(
                "/api/auth/login", json={"email": f"u{i}@example.com", "password": WRONG}
            )
            for i in range(1, 4)
        ]
    finally:
        for place in places:
            place.leave()
    assert [r.status_code for r in shed] == [503] * 3
    assert read(app, "bastion_hasher_shed_total") == 3
    ok = await clients(app, "203.0.113.8").register()
    assert (await clients(app, "203.0.113.8").login(ok["email"], PASSWORD)) is not None
    assert read(app, "bastion_hasher_shed_total") == 3

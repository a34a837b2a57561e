"""Redis stopped, frozen and restarted under a running app: authentication fails closed
(503, never a skipped limit), everything else keeps serving under a per-process limit,
and service returns to normal by itself once Redis is back."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest

from tests.conftest import PASSWORD, Client, Clients, StartApp
from tests.security.conftest import WRONG
from tests.servers import RedisServer


def assert_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["content-type"] == "application/problem+json"


async def poll_until_signed_in(client: Client, email: str) -> None:
    """Log in until it works (up to 15 s). Meanwhile only 429 or 503 are acceptable:
    never a 500, and never a success before the store can count it."""
    deadline = time.monotonic() + 15
    while True:
        r = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        if r.status_code == 200:
            return
        assert r.status_code in (429, 503), r.text
        assert time.monotonic() < deadline, "never recovered"
        await asyncio.sleep(0.1)


async def test_a_dead_redis_fails_closed_for_auth_and_per_process_for_the_rest(
    start_app: StartApp,
    clients: Clients,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = await start_app(
        redis_url=redis_server.url(),
        rate_limit_global="12/minute",
        rate_limit_auth="3/hour",
        lockout="5/15minutes",
    )
    browser = clients(app, "203.0.113.1")
    user = await browser.register()
    token = await browser.login(user["email"])
    caplog.set_level(logging.WARNING, logger="bastion.ratelimit")

    redis_server.stop()

    # Authentication fails closed: no limit is ever skipped, not even for the right password.
    login = {"email": user["email"], "password": PASSWORD}
    assert_unavailable(await browser.post("/api/auth/login", json=login))
    assert_unavailable(await browser.post("/api/auth/login", json={**login, "password": WRONG}))
    fresh = {"email": "new@example.com", "password": PASSWORD, "name": "New"}
    assert_unavailable(await browser.post("/api/auth/register", json=fresh))
    assert_unavailable(await browser.post("/api/auth/refresh"))
    assert "per-process" in caplog.text

    # Everything else keeps serving, under the per-process global limit: 12 a minute,
    # of which the four requests above took four.
    me = await browser.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    statuses = [(await browser.get("/api/products")).status_code for _ in range(8)]
    assert statuses == [200] * 7 + [429]
    assert (await clients(app, "203.0.113.2").get("/api/products")).status_code == 200

    redis_server.start()  # same port, empty

    await poll_until_signed_in(clients(app, "203.0.113.3"), user["email"])
    assert "shared again" in caplog.text
    # Shared limits apply again: the auth limit counts in Redis.
    attacker = clients(app, "203.0.113.4")
    statuses = [
        (await attacker.post("/api/auth/login", json={**login, "password": WRONG})).status_code
        for _ in range(4)
    ]
    assert statuses == [401, 401, 401, 429]


async def test_a_frozen_redis_fails_fast_instead_of_hanging(
    start_app: StartApp, clients: Clients, redis_server: RedisServer
) -> None:
    app = await start_app(redis_url=redis_server.url(), rate_limit_global="100/minute")
    client = clients(app, "203.0.113.1")
    user = await client.register()
    redis_server.freeze()  # accepts connections, never answers
    try:
        login = {"email": user["email"], "password": PASSWORD}
        # Socket timeouts bound each answer; the circuit breaker makes the rest immediate.
        for _ in range(3):
            r = await asyncio.wait_for(client.post("/api/auth/login", json=login), timeout=10)
            assert_unavailable(r)
            products = await asyncio.wait_for(client.get("/api/products"), timeout=10)
            assert products.status_code == 200
    finally:
        redis_server.thaw()
    await poll_until_signed_in(client, user["email"])


async def test_readiness_reports_the_store_and_recovers(
    start_app: StartApp, clients: Clients, redis_server: RedisServer
) -> None:
    app = await start_app(redis_url=redis_server.url())
    client = clients(app, "203.0.113.1")
    assert (await client.get("/readyz")).status_code == 200
    redis_server.stop()
    r = await client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["store"] == "unavailable"
    assert (await client.get("/healthz")).status_code == 200
    redis_server.start()
    deadline = time.monotonic() + 15
    while (await client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, "never ready again"
        await asyncio.sleep(0.1)

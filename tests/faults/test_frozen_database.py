"""PostgreSQL that stops answering without going away (a hung host, a network that drops
packets): connections stay open and queries get no reply. Every wait on it is bounded,
so requests get a 503 with ``Retry-After`` instead of hanging with their connections,
the pool does not fill up with them, the app can still stop, and service comes back by
itself once the server answers again.

The waits are shortened here (``PgTimeouts``); the defaults are the same waits, longer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterator
from typing import Any

import httpx
import pytest

from bastion.db.database import DatabaseUnavailable, PgTimeouts, PostgresDatabase
from tests.conftest import Client, Clients, StartApp
from tests.databases import scratch_postgres
from tests.security.conftest import wait_until
from tests.security.test_store_failure import assert_unavailable
from tests.servers import PostgresCluster

SHORT = PgTimeouts(statement=4.0, command=5.0, acquire=0.5, connect=1.0, ping=0.5, close=0.5)
# Past the longest wait above (a command, then giving its connection back), below what
# the requests would wait in line behind one another (five rounds of commands) or a
# hang: the waits are what is tested, not the machine's speed.
BOUND = 15.0
POOL = 10  # connections: PostgresDatabase's max_size


@pytest.fixture
def frozen_database(postgres: PostgresCluster) -> Iterator[str]:
    with scratch_postgres(postgres.url(), "bastion_frozen") as url:
        yield url


async def test_a_frozen_postgresql_costs_a_bounded_wait_never_a_hang(
    start_app: StartApp, clients: Clients, postgres: PostgresCluster, frozen_database: str
) -> None:
    app = await start_app(database_url=frozen_database)
    db = app.services.db
    assert isinstance(db, PostgresDatabase)
    await db.close()  # the next query opens a pool with the short waits
    db.timeouts = SHORT
    client = clients(app, "203.0.113.1")
    user = await client.user()
    assert (await client.get("/api/orders", headers=user["headers"])).status_code == 200

    async def timed(request: Awaitable[httpx.Response]) -> tuple[float, httpx.Response]:
        sent = time.monotonic()
        r = await request
        return time.monotonic() - sent, r

    postgres.freeze()
    try:
        # Five times as many requests at once as the pool has connections: those that
        # got one wait for their query, the others for a connection (not in line
        # behind the queries); every wait ends in a 503.
        answers = await asyncio.wait_for(
            asyncio.gather(
                *(timed(client.get("/api/orders", headers=user["headers"])) for _ in range(49)),
                timed(client.post("/api/auth/login", json={**login(user), "password": "x"})),
            ),
            timeout=BOUND,
        )
        for _, r in answers:
            assert_unavailable(r)
        waited = sorted(seconds for seconds, _ in answers)
        assert waited[-POOL - 1] < SHORT.command / 2, waited
        ready = await asyncio.wait_for(client.get("/readyz"), timeout=BOUND)
        assert ready.status_code == 503
        assert ready.json()["database"] == "unavailable"
    finally:
        postgres.thaw()
    await until_served(client, user)

    postgres.freeze()
    try:
        # A connection stuck in a query does not keep the app from stopping: closing
        # cuts it after ``close``, long before its query would give up.
        stuck = asyncio.create_task(client.get("/api/orders", headers=user["headers"]))
        await asyncio.sleep(0.2)
        closing = time.monotonic()
        await asyncio.wait_for(db.close(), timeout=BOUND)
        assert time.monotonic() - closing < SHORT.command / 2
        assert_unavailable(await asyncio.wait_for(stuck, timeout=BOUND))
    finally:
        postgres.thaw()
    await until_served(client, user)  # a new pool, opened by the next request


async def test_requests_that_find_no_pool_share_one_bounded_connect_attempt(
    start_app: StartApp,
    clients: Clients,
    postgres: PostgresCluster,
    frozen_database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pool is opened by the first request that needs it. With the server frozen,
    the requests that arrive meanwhile wait for that same attempt, not each for one of
    their own in turn (the last of eight would wait eight connect timeouts): one
    attempt, and every request its 503 within one connect timeout."""
    import asyncpg

    app = await start_app(database_url=frozen_database)
    db = app.services.db
    assert isinstance(db, PostgresDatabase)
    client = clients(app, "203.0.113.2")
    user = await client.user()
    # The login's security event is stored in the background: once it is taken, the
    # close below waits for its write, and no other query comes until the burst.
    writer: Any = app.services.events.sink
    await wait_until(lambda: not writer.pending, "the event writer took the login's event")
    await db.close()  # no pool: the next query opens one
    db.timeouts = SHORT
    attempts: list[str] = []
    real_create_pool = asyncpg.create_pool

    def counting_create_pool(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args[0])
        return real_create_pool(*args, **kwargs)

    monkeypatch.setattr(asyncpg, "create_pool", counting_create_pool)

    async def timed(request: Awaitable[httpx.Response]) -> tuple[float, httpx.Response]:
        sent = time.monotonic()
        r = await request
        return time.monotonic() - sent, r

    postgres.freeze()
    try:
        answers = await asyncio.wait_for(
            asyncio.gather(
                *(timed(client.get("/api/orders", headers=user["headers"])) for _ in range(8))
            ),
            timeout=BOUND,
        )
        tried = len(attempts)
    finally:
        postgres.thaw()
    for _, r in answers:
        assert_unavailable(r)
    assert tried == 1
    waited = max(seconds for seconds, _ in answers)
    assert waited < 2 * SHORT.connect, waited  # one attempt's wait, not two in a row
    await until_served(client, user)


async def test_closing_while_the_pool_is_opened_answers_its_waiters_unavailable(
    postgres: PostgresCluster, frozen_database: str
) -> None:
    """A stop (``close``) during the opening ends it at once: the queries waiting for
    it get DatabaseUnavailable (their 503), not a cancellation of their own."""
    db = PostgresDatabase(frozen_database, timeouts=SHORT)
    postgres.freeze()
    try:
        waiting = asyncio.create_task(db.fetchrow("SELECT 1 AS one"))
        await asyncio.sleep(0.2)
        await asyncio.wait_for(db.close(), timeout=BOUND)
        with pytest.raises(DatabaseUnavailable):
            await asyncio.wait_for(waiting, timeout=BOUND)
    finally:
        postgres.thaw()
    assert await db.fetchrow("SELECT 1 AS one") == {"one": 1}  # opens afresh
    await db.close()


def login(user: dict[str, Any]) -> dict[str, str]:
    return {"email": user["email"], "password": user["password"]}


async def until_served(client: Client, user: dict[str, Any]) -> None:
    """Back by itself once the server answers again: 503s meanwhile, then 200."""
    deadline = time.monotonic() + BOUND
    while (r := await client.get("/api/orders", headers=user["headers"])).status_code != 200:
        assert_unavailable(r)
        assert time.monotonic() < deadline, "never recovered"
        await asyncio.sleep(0.1)
    assert (await client.get("/readyz")).status_code == 200

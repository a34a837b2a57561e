"""200 concurrent order creations against a real server, which is killed with SIGKILL
in mid-stream and started again on the same database: every order that got a 201 is
there with exactly its items and totals, and nothing is half-written (no order without
its items, no item without its order, no order but the ones clients sent).

The database follows the run: SQLite in the server's working directory on the default
run, a scratch database on the PostgreSQL server on the PostgreSQL + Redis run.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, PG_URL, REDIS_URL
from tests.databases import scratch_postgres
from tests.servers import BastionServer, production_env

ORDERS = 200
# The SIGKILL comes once this many orders are stored (the server commits faster than
# the client reads its answers, so counting answers would kill it after the last one).
KILL_AFTER = 60
LINES = 25
Item = tuple[str, int, int]  # product id, quantity, unit price


def body(n: int, products: list[str]) -> dict[str, Any]:
    """Order ``n``: ``LINES`` lines, the first two of which say which order it is (many
    lines per order make each write long enough for a kill to land inside one)."""
    quantities = [1 + n % 100, 1 + n // 100] + [1 + (n + k) % 100 for k in range(2, LINES)]
    return {
        "items": [
            {"productId": products[(n + k) % len(products)], "quantity": q}
            for k, q in enumerate(quantities)
        ],
        "shippingAddress": {
            "line1": f"{n} Durable Street",
            "city": "Crashford",
            "postcode": "CR4 5SH",
            "country": "GB",
        },
        **({"promoCode": "WELCOME10"} if n % 3 == 0 else {}),
    }


def sent_items(n: int, products: list[str], prices: dict[str, int]) -> list[Item]:
    return [
        (i["productId"], i["quantity"], prices[i["productId"]]) for i in body(n, products)["items"]
    ]


@pytest.fixture
def database_url() -> Iterator[str | None]:
    if not PG_URL:
        yield None  # SQLite under the server's working directory
        return
    with scratch_postgres(PG_URL, "bastion_durability") as url:
        yield url


@pytest.fixture
def server(tmp_path: Path, database_url: str | None) -> Iterator[BastionServer]:
    env = {
        **production_env(),
        "BASTION_RATE_LIMIT_GLOBAL": "100000/hour",
        "BASTION_RATE_LIMIT_AUTH": "100000/hour",
        "BASTION_LOCKOUT": "100000/hour",
    }
    if database_url:
        env["BASTION_DATABASE_URL"] = database_url
    if REDIS_URL:
        env["BASTION_REDIS_URL"] = REDIS_URL
    server = BastionServer(tmp_path / "server", env)
    server.cli("seed-demo")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Killer(threading.Thread):
    """Kills the server (SIGKILL) as soon as the user has ``KILL_AFTER`` orders stored.

    A thread with a database connection of its own polls the count: the test's event
    loop is busy with 200 clients, and the server stores orders faster than they read
    their answers."""

    def __init__(self, server: BastionServer, database_url: str | None, user_id: str) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.database_url = database_url
        self.user_id = user_id
        self.stored_at_kill: int | None = None
        self.ready = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        sql = "SELECT count(*) FROM orders WHERE user_id = $1"
        if self.database_url:
            asyncio.run(self._poll_postgres(sql))
            return
        with contextlib.closing(sqlite3.connect(self.server.cwd / "var" / "bastion.sqlite3")) as c:
            self.ready.set()
            while not self.stop.is_set():
                row = c.execute(sql.replace("$1", "?1"), (self.user_id,)).fetchone()
                if self._enough(int(row[0])):
                    return
                time.sleep(0.0005)

    async def _poll_postgres(self, sql: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.database_url)
        try:
            self.ready.set()
            user = uuid.UUID(self.user_id)
            while not self.stop.is_set():
                if self._enough(int(await conn.fetchval(sql, user))):
                    return
                await asyncio.sleep(0.0005)
        finally:
            await conn.close()

    def _enough(self, stored_now: int) -> bool:
        if stored_now < KILL_AFTER:
            return False
        self.server.kill()
        self.stored_at_kill = stored_now
        return True


async def stored(server: BastionServer, database_url: str | None, user_id: str) -> dict[str, Any]:
    """What the database holds, read directly: the user's orders with their items, and
    items whose order does not exist."""
    orders_sql = (
        "SELECT id, subtotal_cents, discount_cents, total_cents, promo_code FROM orders"
        " WHERE user_id = $1"
    )
    items_sql = (
        "SELECT i.order_id, i.position, i.product_id, i.quantity, i.unit_price_cents"
        " FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.user_id = $1"
        " ORDER BY i.order_id, i.position"
    )
    orphans_sql = (
        "SELECT count(*) FROM order_items i WHERE NOT EXISTS"
        " (SELECT 1 FROM orders o WHERE o.id = i.order_id)"
    )
    if database_url:
        import asyncpg

        pg = await asyncpg.connect(database_url)
        try:
            user = uuid.UUID(user_id)
            orders = [dict(r) for r in await pg.fetch(orders_sql, user)]
            items = [dict(r) for r in await pg.fetch(items_sql, user)]
            orphans = await pg.fetchval(orphans_sql)
        finally:
            await pg.close()
    else:
        path = server.cwd / "var" / "bastion.sqlite3"
        with contextlib.closing(sqlite3.connect(path)) as lite:
            lite.row_factory = sqlite3.Row
            orders = [dict(r) for r in lite.execute(orders_sql.replace("$1", "?1"), (user_id,))]
            items = [dict(r) for r in lite.execute(items_sql.replace("$1", "?1"), (user_id,))]
            orphans = lite.execute(orphans_sql).fetchone()[0]
    by_order: dict[str, list[Item]] = {}
    for i in items:
        by_order.setdefault(str(i["order_id"]), []).append(
            (str(i["product_id"]), i["quantity"], i["unit_price_cents"])
        )
    return {
        "orders": {str(o["id"]): o for o in orders},
        "items": by_order,
        "orphans": orphans,
    }


async def test_every_order_that_got_a_201_survives_a_kill_9_whole(
    server: BastionServer, database_url: str | None
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        email = f"buyer-{uuid.uuid4().hex[:8]}@example.com"
        r = await client.post(
            "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "Buyer"}
        )
        assert r.status_code == 201, r.text
        user_id = r.json()["id"]
        r = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {r.json()['accessToken']}"}
        catalogue = (await client.get("/api/products?limit=100")).json()["items"]
    products = [p["id"] for p in catalogue[:5]]
    prices = {p["id"]: p["priceCents"] for p in catalogue}

    answered: list[int] = []
    created: dict[int, dict[str, Any]] = {}
    limits = httpx.Limits(max_connections=ORDERS, max_keepalive_connections=ORDERS)
    killer = Killer(server, database_url, user_id)
    # Switch threads often, so that the killer sees the count while it is low.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)
    killer.start()
    assert killer.ready.wait(10), "the killer could not read the database"
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:

        async def create(n: int) -> None:
            try:
                r = await client.post("/api/orders", json=body(n, products), headers=headers)
            except httpx.TransportError:
                return  # the server died under it: no answer, no promise
            answered.append(r.status_code)
            if r.status_code == 201:
                created[n] = r.json()

        await asyncio.gather(*(create(n) for n in range(ORDERS)))
    killer.stop.set()
    killer.join(10)
    sys.setswitchinterval(switch)

    server.start()  # the same database, the same port
    db = await stored(server, database_url, user_id)
    assert db["orphans"] == 0, "items without their order"
    # Every stored order (answered or not) is whole: exactly the items of one request.
    requests = {tuple(sent_items(n, products, prices)): n for n in range(ORDERS)}
    for order_id in db["orders"]:
        assert tuple(db["items"].get(order_id, ())) in requests, f"{order_id} is half-written"
    # The kill came mid-stream, after some answers and before the last order.
    assert killer.stored_at_kill is not None, "every order was stored before any kill"
    assert killer.stored_at_kill < ORDERS, "the kill came after the last order: nothing proven"
    assert len(answered) < ORDERS, "every request was answered: the kill came too late"
    assert set(answered) <= {201}, answered  # nothing but success before the kill
    assert created, "no order was answered before the kill"
    # Every 201 is stored, exactly as answered.
    for n, order in created.items():
        row = db["orders"].get(order["id"])
        assert row is not None, f"order {n} got a 201 but is gone"
        assert db["items"].get(order["id"]) == sent_items(n, products, prices), n
        subtotal = sum(q * c for _, q, c in sent_items(n, products, prices))
        discount = subtotal * 10 // 100 if n % 3 == 0 else 0
        assert (row["subtotal_cents"], row["discount_cents"], row["total_cents"]) == (
            subtotal,
            discount,
            subtotal - discount,
        )
        assert (order["subtotalCents"], order["totalCents"]) == (subtotal, subtotal - discount)
    assert len(db["orders"]) >= len(created)

    # And the restarted server serves them.
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for order in list(created.values())[:10]:
            r = await client.get(f"/api/orders/{order['id']}", headers=headers)
            assert r.status_code == 200, r.text
            assert r.json() == order

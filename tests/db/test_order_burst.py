"""A burst of concurrent order creations: every one is written whole, with server-side
totals, on every route to the database (tests/db/conftest.py: straight, and through
PgBouncer in transaction mode, where the pool's connections outnumber the server's
and one client connection's transactions land on different server connections)."""

from __future__ import annotations

import asyncio
from typing import Any

from bastion.app import BastionApp
from bastion.db import Database
from tests.api.bodies import order_body
from tests.conftest import Client

BURST = 120  # twelve times a pool's connections: most requests wait for one


async def test_a_burst_of_concurrent_orders_is_all_201_with_exact_totals(
    app: BastionApp, client: Client, db: Database
) -> None:
    user = await client.user()
    products = (await client.get("/api/products?limit=100")).json()["items"]
    price = {p["id"]: p["priceCents"] for p in products}
    assert len(price) >= 2

    def body(i: int) -> dict[str, Any]:
        ids = [products[i % len(products)]["id"], products[(i + 1) % len(products)]["id"]]
        return order_body(ids, 1 + i % 3, 1 + i % 5)

    bodies = [body(i) for i in range(BURST)]
    answers = await asyncio.gather(
        *(client.post("/api/orders", json=b, headers=user["headers"]) for b in bodies)
    )

    assert [r.status_code for r in answers] == [201] * BURST, [
        r.text for r in answers if r.status_code != 201
    ][:3]
    expected_sum = 0
    for sent, r in zip(bodies, answers, strict=True):
        order = r.json()
        subtotal = sum(price[i["productId"]] * i["quantity"] for i in sent["items"])
        assert order["subtotalCents"] == order["totalCents"] == subtotal
        assert [(i["productId"], i["quantity"]) for i in order["items"]] == [
            (i["productId"], i["quantity"]) for i in sent["items"]
        ]
        expected_sum += subtotal

    # What was stored is what was answered: no order lost, doubled or half-written.
    ids = {r.json()["id"] for r in answers}
    assert len(ids) == BURST
    row = await db.fetchrow(
        "SELECT COUNT(*) AS n, COALESCE(SUM(total_cents), 0) AS total FROM orders"
        " WHERE user_id = $1",
        user["id"],
    )
    assert row is not None
    assert (row["n"], row["total"]) == (BURST, expected_sum)
    items = await db.fetchrow(
        "SELECT COUNT(*) AS n FROM order_items JOIN orders ON orders.id = order_items.order_id"
        " WHERE orders.user_id = $1",
        user["id"],
    )
    assert items is not None
    assert items["n"] == 2 * BURST

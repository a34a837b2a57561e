"""``limit`` and ``cursor`` on every list: bounds, defaults, opaque cursors that walk a
list exactly once, and forged cursors that get a 400, never a 500."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from bastion.app import BastionApp
from bastion.db import catalogue
from tests.api.bodies import order_body
from tests.api.problem import assert_problem
from tests.conftest import Client


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


async def _add_products(app: BastionApp, n: int) -> None:
    for i in range(n):
        await catalogue.upsert_product(
            app.services.db,
            product_id=str(uuid.uuid4()),
            name=f"Extra product {i:03}",
            price_cents=100 + i,
            currency="USD",
            now=datetime.now(UTC),
        )


async def _walk(client: Client, path: str, limit: int, headers: Any = None) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        r = await client.get(path, params=params, headers=headers)
        assert r.status_code == 200, r.text
        pages.append([item["id"] for item in r.json()["items"]])
        cursor = r.json()["nextCursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100


@pytest.mark.parametrize("limit", [1, 100])
async def test_the_limits_bounds_are_accepted(client: Client, limit: int) -> None:
    r = await client.get("/api/products", params={"limit": limit})
    assert r.status_code == 200
    assert 1 <= len(r.json()["items"]) <= limit


async def test_products_come_20_to_a_page_by_default(app: BastionApp, client: Client) -> None:
    await _add_products(app, 20)
    r = await client.get("/api/products")
    assert len(r.json()["items"]) == 20
    assert r.json()["nextCursor"]


async def test_the_product_cursor_walks_the_catalogue_exactly_once(
    app: BastionApp, client: Client
) -> None:
    await _add_products(app, 10)
    everything = [p["id"] for p in (await client.get("/api/products?limit=100")).json()["items"]]
    assert len(everything) >= 15
    pages = await _walk(client, "/api/products", limit=4)
    walked = [p for page in pages for p in page]
    assert walked == everything
    assert len(set(walked)) == len(walked)
    assert all(len(page) == 4 for page in pages[:-1])


async def test_the_order_cursor_walks_every_order_once_even_when_times_tie(
    app: BastionApp, client: Client
) -> None:
    user = await client.user()
    body = order_body((await client.product_ids())[:1])
    created = []
    for _ in range(7):
        r = await client.post("/api/orders", json=body, headers=user["headers"])
        created.append(r.json()["id"])
    # Four orders share one instant: only the id can order them.
    await app.services.db.execute(
        "UPDATE orders SET created_at = $1 WHERE id IN ($2, $3, $4, $5)",
        datetime(2030, 1, 1, tzinfo=UTC),
        *created[1:5],
    )
    pages = await _walk(client, "/api/orders", limit=2, headers=user["headers"])
    walked = [o for page in pages for o in page]
    assert sorted(walked) == sorted(created)
    assert len(set(walked)) == len(walked) == 7
    first = (await client.get("/api/orders?limit=100", headers=user["headers"])).json()["items"]
    assert walked == [o["id"] for o in first]


async def test_orders_come_20_to_a_page_by_default(client: Client) -> None:
    user = await client.user()
    body = order_body((await client.product_ids())[:1])
    for _ in range(21):
        assert (await client.post("/api/orders", json=body, headers=user["headers"])).is_success
    r = await client.get("/api/orders", headers=user["headers"])
    assert len(r.json()["items"]) == 20
    rest = await client.get(
        "/api/orders", params={"cursor": r.json()["nextCursor"]}, headers=user["headers"]
    )
    assert len(rest.json()["items"]) == 1
    assert rest.json()["nextCursor"] is None


FORGED = [
    "garbage",
    "!!!",
    "é",
    "x" * 600,
    base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
    _cursor({"id": "x"}),
    _cursor([]),
    _cursor(None),
    _cursor([1]),
    _cursor([1, 2]),
    _cursor(["' OR '1'='1"]),
    _cursor(["' OR '1'='1", "' OR '1'='1"]),
    _cursor(["2020-01-01T00:00:00", "00000000-0000-4000-8000-000000000000"]),
    _cursor(["9999-12-31T23:59:59-14:00", "00000000-0000-4000-8000-000000000000"]),
    _cursor(["0001-01-01T00:00:00+14:00", "00000000-0000-4000-8000-000000000000"]),
    _cursor(["2020-01-01T00:00:00Z", "00000000-0000-4000-8000-00000000000G"]),
    _cursor(["2020-01-01T00:00:00Z", "00000000-0000-4000-8000-000000000000", "extra"]),
    _cursor(["00000000-0000-4000-8000-000000000000"] * 2),
]


@pytest.mark.parametrize("cursor", FORGED)
@pytest.mark.parametrize("path", ["/api/products", "/api/orders"])
async def test_a_forged_cursor_is_refused_with_a_pointer(
    client: Client, path: str, cursor: str
) -> None:
    user = await client.user()
    r = await client.get(path, params={"cursor": cursor}, headers=user["headers"])
    assert_problem(r, 400, "#/query/cursor")


async def test_an_orders_cursor_is_not_a_products_cursor(client: Client) -> None:
    user = await client.user()
    body = order_body((await client.product_ids())[:1])
    for _ in range(2):
        await client.post("/api/orders", json=body, headers=user["headers"])
    cursor = (await client.get("/api/orders?limit=1", headers=user["headers"])).json()["nextCursor"]
    r = await client.get("/api/products", params={"cursor": cursor})
    assert_problem(r, 400, "#/query/cursor")

"""The catalogue's order: by name (ASCII letters without case), then id, on REST and
GraphQL alike, SQLite and PostgreSQL alike; the cursor carries that place, so pages walk
every product exactly once, ties in the name included, cached pages too."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from bastion.app import BastionApp
from bastion.db import catalogue
from tests.api.graphql.conftest import gql
from tests.conftest import Client

# Names that tie (the same once ASCII case is set aside), names that differ only past
# ASCII (code point order: "É" after every ASCII letter), and a neighbour on each side.
NAMES = [
    "Tie",
    "tie",
    "TIE",
    "tIE",
    "tie ",
    "Tia",
    "Tiz",
    "École",
    "ecole",
    "Ecole",
    "zebra",
    "Zebra crossing",
    "0 first",
    "~ after letters",
]
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def expected_order(rows: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in sorted(rows, key=lambda r: (r["name"].translate(_LOWER), r["id"]))]


async def _catalogue(app: BastionApp) -> list[dict[str, Any]]:
    """Every active product, read straight from the database: the oracle."""
    for name in NAMES:
        await catalogue.upsert_product(
            app.services.db,
            product_id=str(uuid.uuid4()),
            name=name,
            price_cents=100,
            currency="USD",
            now=datetime.now(UTC),
        )
    rows = await app.services.db.fetch("SELECT id, name FROM products WHERE active")
    assert len(rows) >= len(NAMES)
    return rows


async def _rest_walk(client: Client, limit: int) -> list[str]:
    walked: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/api/products", params=params)
        assert r.status_code == 200, r.text
        walked += [p["id"] for p in r.json()["items"]]
        cursor = r.json()["nextCursor"]
        if cursor is None:
            return walked
    raise AssertionError("the pages never ended")


async def _graphql_walk(client: Client, first: int) -> list[str]:
    walked: list[str] = []
    after: str | None = None
    for _ in range(100):
        r = await gql(
            client,
            "query ($first: Int!, $after: String) { products(first: $first, after: $after)"
            " { id cursor } }",
            variables={"first": first, "after": after},
        )
        assert r.status_code == 200, r.text
        page = r.json()["data"]["products"]
        assert len(page) <= first
        walked += [p["id"] for p in page]
        if len(page) < first:
            return walked
        after = page[-1]["cursor"]
    raise AssertionError("the pages never ended")


@pytest.mark.parametrize("limit", [1, 2, 3, 100])
async def test_rest_pages_walk_every_product_once_by_name_then_id(
    app: BastionApp, client: Client, limit: int
) -> None:
    rows = await _catalogue(app)
    want = expected_order(rows)
    assert await _rest_walk(client, limit) == want
    # Again, now from the page cache: the same pages, the same cursors.
    assert await _rest_walk(client, limit) == want


@pytest.mark.parametrize("first", [1, 2, 3, 100])
async def test_graphql_pages_walk_every_product_once_by_name_then_id(
    app: BastionApp, client: Client, first: int
) -> None:
    rows = await _catalogue(app)
    assert await _graphql_walk(client, first) == expected_order(rows)


async def test_names_that_tie_are_ordered_by_id(app: BastionApp, client: Client) -> None:
    """The control for the walks above: the ties are there, and only the id orders them."""
    rows = await _catalogue(app)
    tied = [r for r in rows if r["name"].translate(_LOWER) == "tie"]
    assert len(tied) == 4
    walked = await _rest_walk(client, 2)
    positions = sorted(walked.index(r["id"]) for r in tied)
    assert positions == list(range(positions[0], positions[0] + 4))
    assert [walked[i] for i in positions] == sorted(r["id"] for r in tied)


async def test_a_product_added_behind_the_cursor_does_not_shift_the_pages(
    app: BastionApp, client: Client
) -> None:
    await _catalogue(app)
    r = await client.get("/api/products", params={"limit": 3})
    first_page = [p["id"] for p in r.json()["items"]]
    await catalogue.upsert_product(
        app.services.db,
        product_id=str(uuid.uuid4()),
        name="!!! sorts first",
        price_cents=1,
        currency="USD",
        now=datetime.now(UTC),
    )
    rest = await client.get(
        "/api/products", params={"limit": 100, "cursor": r.json()["nextCursor"]}
    )
    everything = expected_order(
        await app.services.db.fetch("SELECT id, name FROM products WHERE active")
    )
    assert first_page + [p["id"] for p in rest.json()["items"]] == everything[1:]


async def test_a_migration_indexes_the_catalogue_order(app: BastionApp) -> None:
    db = app.services.db
    if db.dialect == "postgresql":
        row = await db.fetchrow(
            "SELECT indexdef AS sql FROM pg_indexes WHERE indexname = 'products_by_name'"
        )
    else:
        row = await db.fetchrow(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'products_by_name'"
        )
    assert row is not None
    assert "lower" in row["sql"].lower()
    assert "id" in row["sql"]


@pytest.mark.parametrize("name", ["", "x" * (catalogue.MAX_NAME + 1)])
async def test_a_name_no_cursor_could_carry_is_refused(app: BastionApp, name: str) -> None:
    with pytest.raises(ValueError, match="product name"):
        await catalogue.upsert_product(
            app.services.db,
            product_id=str(uuid.uuid4()),
            name=name,
            price_cents=1,
            currency="USD",
            now=datetime.now(UTC),
        )


async def test_the_longest_name_pages_through_in_the_longest_text(
    app: BastionApp, client: Client
) -> None:
    """A cursor holds the name: one of MAX_NAME control characters (6 bytes of JSON each)
    still fits in the cursor a client may send back."""
    for c in "\x01\x02":
        await catalogue.upsert_product(
            app.services.db,
            product_id=str(uuid.uuid4()),
            name=c * catalogue.MAX_NAME,
            price_cents=1,
            currency="USD",
            now=datetime.now(UTC),
        )
    walked = await _rest_walk(client, 1)
    rows = await app.services.db.fetch("SELECT id, name FROM products WHERE active")
    assert walked == expected_order(rows)

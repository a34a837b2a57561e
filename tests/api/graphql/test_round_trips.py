"""The database work of a query depends on its shape, not on how much data it reads:
one statement per level (dataloaders), and repeated fields share one."""

from __future__ import annotations

from typing import Any

from bastion.app import BastionApp
from tests.api.graphql.conftest import FULL_ORDERS, data, gql, place_orders
from tests.conftest import Client, CountingDatabase


async def _statements(
    client: Client,
    statements: CountingDatabase,
    user: dict[str, Any],
    query: str,
    variables: dict[str, Any] | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """The statements one query sends, and its data."""
    statements.reset()
    answer = data(await gql(client, query, user=user, variables=variables))
    return list(statements.statements), answer


async def test_statements_per_query_stay_the_same_from_1_to_30_orders(
    app: BastionApp, client: Client, statements: CountingDatabase
) -> None:
    user = await client.user()
    await place_orders(client, user, 1, products=3)
    one, answer = await _statements(client, statements, user, FULL_ORDERS, {"first": 100})
    assert len(answer["me"]["orders"]) == 1
    await place_orders(client, user, 29, products=5)
    thirty, answer = await _statements(client, statements, user, FULL_ORDERS, {"first": 100})
    orders = answer["me"]["orders"]
    assert len(orders) == 30
    assert all(i["product"]["name"] for o in orders for i in o["items"])
    # The user, their orders with items, and the products of all the items: three.
    assert len(thirty) == len(one) == 3, thirty


async def test_repeating_a_field_under_aliases_adds_no_statement(
    app: BastionApp, client: Client, statements: CountingDatabase
) -> None:
    user = await client.user()
    await place_orders(client, user, 3)
    once = "{ me { orders(first: 10) { items { product { name } } } } products(first: 5) { id } }"
    repeated = (
        "{ a: me { orders(first: 10) { items { product { name } } } }"
        " b: me { orders(first: 10) { items { product { id } } } }"
        " c: me { ...M } d: me { ...M }"
        " p: products(first: 5) { id } q: products(first: 5) { name } }"
        " fragment M on User { orders(first: 10) { items { product { priceCents } } } }"
    )
    single, _ = await _statements(client, statements, user, once)
    many, answer = await _statements(client, statements, user, repeated)
    assert len(answer) == 6
    assert len(many) == len(single) == 4, many

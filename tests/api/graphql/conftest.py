"""Helpers for the GraphQL tests: a query call and orders to read. (The count of the SQL
statements the app sends, ``statements``, is in tests/conftest.py, shared with
tests/attacks/.)"""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.bodies import order_body
from tests.conftest import Client

FULL_ORDERS = """
query Orders($first: Int!, $after: String) {
  me {
    id email name
    orders(first: $first, after: $after) {
      id status totalCents cursor
      items { quantity unitPriceCents product { id name } }
    }
  }
}
"""


async def gql(
    client: Client,
    query: str,
    *,
    user: dict[str, Any] | None = None,
    variables: dict[str, Any] | None = None,
    **extra: Any,
) -> httpx.Response:
    """POST a query, as ``user`` (their Bearer token) or anonymously."""
    body: dict[str, Any] = {"query": query, **extra}
    if variables is not None:
        body["variables"] = variables
    headers = user["headers"] if user else {}
    return await client.post("/api/graphql", json=body, headers=headers)


def data(response: httpx.Response) -> dict[str, Any]:
    """The ``data`` of a successful answer (and nothing else in the body)."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"data"}, body
    return body["data"]  # type: ignore[no-any-return]


async def place_orders(
    client: Client, user: dict[str, Any], count: int, *, products: int = 3
) -> list[str]:
    """``count`` orders of the first ``products`` catalogue products; their ids."""
    ids = (await client.product_ids())[:products]
    placed = []
    for _ in range(count):
        r = await client.post("/api/orders", json=order_body(ids), headers=user["headers"])
        assert r.status_code == 201, r.text
        placed.append(r.json()["id"])
    return placed

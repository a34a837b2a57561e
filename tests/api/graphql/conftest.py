"""Helpers for the GraphQL tests: a query call, orders to read, and a count of the SQL
statements the app sends."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from bastion.app import BastionApp
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


class CountingDatabase:
    """The app's database, counting the statements sent through it (security events,
    written in the background, are left out)."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.statements: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def _count(self, sql: str) -> None:
        if "security_events" not in sql:
            self.statements.append(sql)

    async def fetch(self, sql: str, *args: Any) -> Any:
        self._count(sql)
        return await self._db.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        self._count(sql)
        return await self._db.fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> Any:
        self._count(sql)
        return await self._db.execute(sql, *args)

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> Any:
        self._count(sql)
        return await self._db.executemany(sql, args)

    def reset(self) -> None:
        self.statements.clear()


@pytest.fixture
def statements(app: BastionApp) -> Iterator[CountingDatabase]:
    """The app's database, counting from now on; ``statements.reset()`` starts again."""
    real = app.services.db
    counting = CountingDatabase(real)
    app.services.db = counting  # type: ignore[assignment]
    yield counting
    app.services.db = real

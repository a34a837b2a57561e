"""Depth, aliases, tokens and ``first``: a query at a limit runs, and each limit is
configurable. The queries one past a limit (a 400 that names it, before anything runs),
through fragments nested, repeated or cyclic, are in
tests/attacks/test_api4_resource_consumption.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bastion.api.graphql.limits import GraphQLLimits
from bastion.api.graphql.router import limits_from
from bastion.app import BastionApp
from bastion.config import ConfigError, load_settings
from bastion.db import catalogue, orders
from tests.api.graphql.conftest import data, gql
from tests.api.problem import assert_problem
from tests.conftest import Client, client_for

INVALID = "The query is not valid for this API."


def aliases(n: int, field: str = "__typename") -> str:
    return " ".join(f"a{i}: {field}" for i in range(n))


# ---------------------------------------------------------------------------------- depth

DEPTH_3 = "{ me { orders { items { quantity } } } }"


async def test_a_query_at_the_depth_limit_runs(start_app: Any) -> None:
    async with client_for(await start_app(graphql_max_depth=3)) as client:
        user = await client.user()
        assert data(await gql(client, DEPTH_3, user=user)) == {"me": {"orders": []}}


async def test_the_default_depth_limit_is_six_and_applies_before_validation(
    client: Client,
) -> None:
    def nested(depth: int) -> str:
        return "{" + " f {" * depth + " leaf" + " }" * depth + " }"

    # Six levels of made-up fields pass the limit and fail validation; seven fail the limit.
    assert assert_problem(await gql(client, nested(6)), 400)["detail"] == INVALID
    body = assert_problem(await gql(client, nested(7)), 400, "#/query")
    assert body["detail"] == "The query is 7 levels deep; at most 6 are allowed."


# -------------------------------------------------------------------------------- aliases


async def test_a_fragment_with_aliases_spread_once_counts_once(client: Client) -> None:
    query = "{ ...A } fragment A on Query { " + aliases(15) + " }"
    assert len(data(await gql(client, query))) == 15


# ---------------------------------------------------------------------------------- first


async def _more_than_100_of_each(app: BastionApp, user_id: str) -> None:
    """101 products and 101 orders of ``user_id``: enough that ``first: 100`` is cut."""
    db, now = app.services.db, datetime.now(UTC)
    for i in range(101):
        await catalogue.upsert_product(
            db,
            product_id=str(uuid.uuid4()),
            name=f"First limit product {i:03}",
            price_cents=100 + i,
            currency="USD",
            now=now,
        )
    (product,) = await catalogue.list_products(db, after=None, limit=1)
    for i in range(101):
        await orders.create_order(
            db,
            orders.NewOrder(
                id=str(uuid.uuid4()),
                user_id=user_id,
                items=[(product["id"], 1, product["price_cents"])],
                line1="1 Main Street",
                city="Springfield",
                postcode="12345",
                country="US",
                promo_code=None,
                subtotal_cents=product["price_cents"],
                discount_cents=0,
                total_cents=product["price_cents"],
                currency="USD",
                created_at=now - timedelta(seconds=i),
            ),
        )


@pytest.mark.parametrize(
    ("field", "path"),
    [
        ("products(first: N) { id }", ["products"]),
        ("me { orders(first: N) { id } }", ["me", "orders"]),
    ],
)
async def test_first_runs_from_1_to_100(
    app: BastionApp, client: Client, field: str, path: list[str]
) -> None:
    """With more than 100 of each, ``first: n`` gets exactly ``n``, at both bounds."""
    user = await client.user()
    await _more_than_100_of_each(app, user["id"])
    for n in (1, 100):
        got: Any = data(await gql(client, "{ " + field.replace("N", str(n)) + " }", user=user))
        for key in path:
            got = got[key]
        assert len(got) == n
        assert len({item["id"] for item in got}) == n


# ------------------------------------------------------------------------ before anything


@pytest.mark.parametrize(
    ("settings", "query", "detail"),
    [
        (
            {"graphql_max_depth": 1},
            "{ me { orders { id } } }",
            "The query is 2 levels deep; at most 1 are allowed.",
        ),
        (
            {"graphql_max_aliases": 2},
            "{ " + aliases(3) + " }",
            "The query uses 3 aliases; at most 2 are allowed.",
        ),
        (
            {"graphql_max_tokens": 5},
            "{ products { id } }",
            "The query has more than 5 tokens; at most 5 are allowed.",
        ),
        (
            {"graphql_max_first": 5},
            "{ products(first: 6) { id } }",
            "first must be between 1 and 5, not 6.",
        ),
    ],
    ids=["depth", "aliases", "tokens", "first"],
)
async def test_each_limit_is_configurable(
    start_app: Any, settings: dict[str, int], query: str, detail: str
) -> None:
    async with client_for(await start_app(**settings)) as client:
        user = await client.user()
        body = assert_problem(await gql(client, query, user=user), 400, "#/query")
        assert body["detail"] == detail


def test_the_limits_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("DEPTH", "4"), ("ALIASES", "3"), ("TOKENS", "200"), ("FIRST", "50")):
        monkeypatch.setenv(f"BASTION_GRAPHQL_MAX_{name}", value)
    settings = load_settings(access_secret="a" * 40, refresh_secret="b" * 40)
    assert limits_from(settings) == GraphQLLimits(
        max_depth=4, max_aliases=3, max_tokens=200, max_first=50
    )
    assert GraphQLLimits() == GraphQLLimits(
        max_depth=6, max_aliases=15, max_tokens=1000, max_first=100
    )


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5"])
def test_a_bad_limit_stops_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("BASTION_GRAPHQL_MAX_DEPTH", value)
    with pytest.raises(ConfigError, match="BASTION_GRAPHQL_MAX_DEPTH"):
        load_settings(access_secret="a" * 40, refresh_secret="b" * 40)
    with pytest.raises(ValueError, match="max_depth"):
        GraphQLLimits(max_depth=0)

"""Introspection and "did you mean" hints in development only (their refusal in
production is in tests/attacks/test_api8_security_misconfiguration.py); no GraphiQL page
and no GET queries in either mode."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import get_introspection_query

from bastion.app import BastionApp
from tests.api.graphql.conftest import data, gql
from tests.api.problem import assert_problem
from tests.conftest import PRODUCTION_SECRETS, Client, client_for

INTROSPECTION = [
    get_introspection_query(),
    "{ __schema { types { name } } }",
    '{ __type(name: "User") { fields { name } } }',
    "{ products { id } ... on Query { __schema { queryType { name } } } }",
    "{ ...F } fragment F on Query { s: __schema { queryType { name } } }",
]
INTROSPECTION_IDS = ["standard", "schema", "type", "inline-fragment", "aliased-in-fragment"]


@pytest.mark.parametrize("query", INTROSPECTION, ids=INTROSPECTION_IDS)
async def test_introspection_answers_in_development(client: Client, query: str) -> None:
    assert data(await gql(client, query))


async def test_typename_still_answers_in_production(production: BastionApp) -> None:
    async with client_for(production) as client:
        assert data(await gql(client, "{ __typename products { __typename } }")) == {
            "__typename": "Query",
            "products": [],  # production seeds no demo catalogue
        }


@pytest.mark.parametrize("mode", ["development", "production"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/graphql"),
        ("GET", "/api/graphql?query=%7Bproducts%7Bid%7D%7D"),
        ("PUT", "/api/graphql"),
    ],
    ids=["graphiql", "get-query", "put"],
)
async def test_only_post_is_served(start_app: Any, mode: str, method: str, path: str) -> None:
    settings = {"env": "production", **PRODUCTION_SECRETS} if mode == "production" else {}
    async with client_for(await start_app(**settings)) as client:
        r = await client.request(method, path, headers={"Accept": "text/html"})
    assert_problem(r, 405)
    assert r.headers["allow"] == "POST"
    assert "<html" not in r.text.lower()

"""Introspection and "did you mean" hints in development only; no GraphiQL page and no
GET queries in either mode."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import get_introspection_query

from bastion.app import BastionApp
from tests.api.graphql.conftest import data, gql
from tests.api.problem import assert_problem
from tests.conftest import Client, client_for

SECRETS = {"access_secret": "a" * 40, "refresh_secret": "b" * 40}

INTROSPECTION = [
    get_introspection_query(),
    "{ __schema { types { name } } }",
    '{ __type(name: "User") { fields { name } } }',
    "{ products { id } ... on Query { __schema { queryType { name } } } }",
    "{ ...F } fragment F on Query { s: __schema { queryType { name } } }",
]
INTROSPECTION_IDS = ["standard", "schema", "type", "inline-fragment", "aliased-in-fragment"]


@pytest.fixture
async def production(start_app: Any) -> BastionApp:
    return await start_app(env="production", **SECRETS)  # type: ignore[no-any-return]


@pytest.mark.parametrize("query", INTROSPECTION, ids=INTROSPECTION_IDS)
async def test_introspection_answers_in_development(client: Client, query: str) -> None:
    assert data(await gql(client, query))


@pytest.mark.parametrize("query", INTROSPECTION, ids=INTROSPECTION_IDS)
async def test_introspection_is_a_400_in_production(production: BastionApp, query: str) -> None:
    async with client_for(production) as client:
        body = assert_problem(await gql(client, query), 400, "#/query")
    assert any("introspection has been disabled" in e["detail"] for e in body["errors"]), body


async def test_typename_still_answers_in_production(production: BastionApp) -> None:
    async with client_for(production) as client:
        assert data(await gql(client, "{ __typename products { __typename } }")) == {
            "__typename": "Query",
            "products": [],  # production seeds no demo catalogue
        }


async def test_field_suggestions_are_given_in_development_only(
    client: Client, production: BastionApp
) -> None:
    query = "{ me { emai } }"
    user = await client.user()
    body = assert_problem(await gql(client, query, user=user), 400, "#/query")
    assert "Did you mean 'email'?" in body["errors"][0]["detail"]
    async with client_for(production) as prod:
        prod_user = await prod.user()
        body = assert_problem(await gql(prod, query, user=prod_user), 400, "#/query")
    assert (
        body["errors"][0]["detail"]
        == "Cannot query field 'emai' on type 'User'. (line 1, column 8)"
    )


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
    settings = {"env": "production", **SECRETS} if mode == "production" else {}
    async with client_for(await start_app(**settings)) as client:
        r = await client.request(method, path, headers={"Accept": "text/html"})
    assert_problem(r, 405)
    assert r.headers["allow"] == "POST"
    assert "<html" not in r.text.lower()

"""POST /api/graphql answers what REST answers: the caller's account and orders, the
public catalogue, pages by cursor; and refuses what is not a valid read-only query."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.app import BastionApp
from bastion.db import DatabaseUnavailable
from tests.api.graphql.conftest import FULL_ORDERS, data, gql, place_orders
from tests.api.problem import assert_problem
from tests.conftest import Client


async def test_me_answers_the_callers_account_and_orders_as_rest_does(client: Client) -> None:
    user = await client.user()
    await place_orders(client, user, 2)
    me = data(await gql(client, FULL_ORDERS, user=user, variables={"first": 10}))["me"]
    rest_user = (await client.get("/api/users/me", headers=user["headers"])).json()
    rest_orders = (await client.get("/api/orders", headers=user["headers"])).json()["items"]
    assert {k: me[k] for k in ("id", "email", "name")} == {
        k: rest_user[k] for k in ("id", "email", "name")
    }
    assert [o["id"] for o in me["orders"]] == [o["id"] for o in rest_orders]
    names = {
        p["id"]: p["name"] for p in (await client.get("/api/products?limit=100")).json()["items"]
    }
    for got, rest in zip(me["orders"], rest_orders, strict=True):
        assert got["status"] == rest["status"]
        assert got["totalCents"] == rest["totalCents"]
        assert [
            (i["quantity"], i["unitPriceCents"], i["product"]["id"], i["product"]["name"])
            for i in got["items"]
        ] == [
            (i["quantity"], i["unitPriceCents"], i["productId"], names[i["productId"]])
            for i in rest["items"]
        ]


async def test_products_are_public_and_match_the_rest_catalogue(client: Client) -> None:
    got = data(await gql(client, "{ products(first: 100) { id name priceCents currency } }"))
    rest = (await client.get("/api/products?limit=100")).json()["items"]
    assert got["products"] == rest
    assert len(rest) >= 5


async def test_orders_page_by_the_cursor_of_the_last_one(client: Client) -> None:
    user = await client.user()
    await place_orders(client, user, 5, products=1)
    rest = (await client.get("/api/orders", headers=user["headers"])).json()["items"]
    seen: list[str] = []
    after = None
    while True:
        page = data(
            await gql(client, FULL_ORDERS, user=user, variables={"first": 2, "after": after})
        )["me"]["orders"]
        seen += [o["id"] for o in page]
        if len(page) < 2:
            break
        after = page[-1]["cursor"]
    assert seen == [o["id"] for o in rest]
    # The cursor of an item is the one REST gives for the page that ends with it.
    first_two = data(await gql(client, FULL_ORDERS, user=user, variables={"first": 2}))
    rest_page = (await client.get("/api/orders?limit=2", headers=user["headers"])).json()
    assert first_two["me"]["orders"][-1]["cursor"] == rest_page["nextCursor"]


async def test_products_page_by_the_cursor_of_the_last_one(client: Client) -> None:
    query = "query P($after: String) { products(first: 2, after: $after) { id cursor } }"
    seen: list[str] = []
    after = None
    while True:
        page = data(await gql(client, query, variables={"after": after}))["products"]
        seen += [p["id"] for p in page]
        if len(page) < 2:
            break
        after = page[-1]["cursor"]
    assert seen == await client.product_ids()


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "WyJub3QtYS11dWlkIl0", "W10", ""],
    ids=["text", "not-uuid", "empty-list", "empty"],
)
async def test_a_cursor_this_api_did_not_issue_is_a_400(client: Client, cursor: str) -> None:
    user = await client.user()
    for query, who in (
        ("query($a: String) { me { orders(after: $a) { id } } }", user),
        ("query($a: String) { products(after: $a) { id } }", None),
    ):
        r = await gql(client, query, user=who, variables={"a": cursor})
        if cursor == "":
            # An empty cursor is no cursor: the first page.
            data(r)
            continue
        body = assert_problem(r, 400, "#/query")
        assert body["detail"] == "The cursor is not valid."


@pytest.mark.parametrize(
    "query",
    [
        "{ me { id } }",
        "{ products { id } me { id } }",
        "{ whoever: me { email } }",
        "{ ...M } fragment M on Query { me { orders { id } } }",
    ],
    ids=["me", "beside-products", "aliased", "in-a-fragment"],
)
async def test_me_without_a_token_is_a_401_with_www_authenticate(
    client: Client, query: str
) -> None:
    r = await gql(client, query)
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "data" not in r.json()


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer ", "bearer a.b.c"],
    ids=["garbage", "basic", "empty", "forged"],
)
async def test_a_bad_credential_is_a_401_even_for_public_fields(
    client: Client, authorization: str
) -> None:
    r = await client.post(
        "/api/graphql",
        json={"query": "{ products { id } }"},
        headers={"Authorization": authorization},
    )
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_operation_name_picks_the_operation_to_run(client: Client) -> None:
    user = await client.user()
    query = "query A { products(first: 1) { id } } query B { me { name } }"
    assert data(await gql(client, query, user=user, operationName="B")) == {
        "me": {"name": user["name"]}
    }
    for name in (None, "C"):
        r = await gql(client, query, user=user, operationName=name)
        assert_problem(r, 400, "#/operationName")


async def test_variables_of_the_wrong_type_are_a_400(client: Client) -> None:
    query = "query($n: Int!) { products(first: $n) { id } }"
    for value in ("10", 1.5, True, None, [1]):
        r = await gql(client, query, variables={"n": value})
        assert_problem(r, 400, "#/variables")


@pytest.mark.parametrize(
    ("query", "where"),
    [("{ products { id }", "line 1, column 18"), ("{ products(first: ) { id } }", "line 1")],
    ids=["unclosed", "missing-value"],
)
async def test_invalid_syntax_is_a_400_that_says_where(
    client: Client, query: str, where: str
) -> None:
    body = assert_problem(await gql(client, query), 400, "#/query")
    assert where in body["errors"][0]["detail"]
    assert "Syntax Error" in body["errors"][0]["detail"]


@pytest.mark.parametrize(
    "body",
    [
        [{"query": "{ products { id } }"}, {"query": "{ products { name } }"}],
        {"query": "{ products { id } }", "variables": "{}"},
        {"query": 42},
        {"query": ""},
        {"query": "{ products { id } }", "root": {}},
        {},
    ],
    ids=["batch", "variables-as-text", "query-not-text", "empty-query", "unknown-field", "empty"],
)
async def test_a_request_that_is_not_one_graphql_query_is_a_400(client: Client, body: Any) -> None:
    r = await client.post("/api/graphql", json=body)
    assert_problem(r, 400)


class _Failing:
    """A database whose reads fail with ``error``, after the caller is authenticated."""

    def __init__(self, db: Any, error: Exception) -> None:
        self._db, self._error = db, error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    async def fetch(self, sql: str, *args: Any) -> Any:
        raise self._error

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        raise self._error


async def test_a_database_outage_is_a_503_with_retry_after(app: BastionApp, client: Client) -> None:
    user = await client.user()
    real = app.services.db
    app.services.db = _Failing(real, DatabaseUnavailable("connection refused"))  # type: ignore[assignment]
    try:
        r = await gql(client, "{ me { orders { id } } products { id } }", user=user)
    finally:
        app.services.db = real
    assert_problem(r, 503)
    assert int(r.headers["retry-after"]) > 0


async def test_a_resolver_bug_is_an_opaque_500_and_logged(
    app: BastionApp, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    user = await client.user()
    real = app.services.db
    app.services.db = _Failing(real, RuntimeError("column secret_sauce does not exist"))  # type: ignore[assignment]
    try:
        r = await gql(client, "{ me { id } }", user=user)
    finally:
        app.services.db = real
    body = assert_problem(r, 500)
    assert "secret_sauce" not in r.text
    assert body["detail"] == "Something went wrong on our side."
    assert any(
        "secret_sauce" in (str(rec.exc_info[1]) if rec.exc_info else "") for rec in caplog.records
    )

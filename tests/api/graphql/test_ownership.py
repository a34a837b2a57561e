"""No field path reaches another user's orders or anyone's secrets: ``orders`` is always
the caller's, and the schema has exactly the allowlisted fields, nothing more."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.graphql.conftest import data, gql, place_orders
from tests.api.problem import assert_problem
from tests.conftest import Client

# The whole schema, type by type: a new field must be added here on purpose.
ALLOWLIST = {
    "Query": {"me", "products"},
    "User": {"id", "email", "name", "role", "createdAt", "orders"},
    "Order": {
        "id",
        "status",
        "items",
        "shippingAddress",
        "promoCode",
        "subtotalCents",
        "discountCents",
        "totalCents",
        "currency",
        "createdAt",
        "cursor",
    },
    "OrderItem": {"productId", "quantity", "unitPriceCents", "product"},
    "ShippingAddress": {"line1", "city", "postcode", "country"},
    "Product": {"id", "name", "priceCents", "currency", "cursor"},
}

TYPES = """
{ __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { name kind fields { name args { name } } }
} }
"""


async def test_the_schema_has_exactly_the_allowlisted_types_and_fields(client: Client) -> None:
    schema = data(await gql(client, TYPES))["__schema"]
    assert schema["queryType"] == {"name": "Query"}
    assert schema["mutationType"] is None
    assert schema["subscriptionType"] is None
    objects = {
        t["name"]: {f["name"] for f in t["fields"]}
        for t in schema["types"]
        if t["kind"] == "OBJECT" and not t["name"].startswith("__")
    }
    assert objects == ALLOWLIST
    arguments = {
        (t["name"], f["name"]): {a["name"] for a in f["args"]}
        for t in schema["types"]
        if t["kind"] == "OBJECT" and not t["name"].startswith("__")
        for f in t["fields"]
        if f["args"]
    }
    # No argument anywhere names a user: whose orders is the token's to say.
    assert arguments == {
        ("Query", "products"): {"first", "after"},
        ("User", "orders"): {"first", "after"},
    }


ALL_PATHS = """
query Everything {
  me { id orders(first: 100) { id items { product { id } } } }
  again: me { ...Mine }
  ... on Query { me { ...Mine } }
}
fragment Mine on User { orders(first: 100) { id } }
"""


async def test_every_path_to_orders_gives_the_callers_own_and_nobody_elses(
    client: Client,
) -> None:
    alice, bob = await client.user(), await client.user()
    alices = set(await place_orders(client, alice, 3))
    bobs = set(await place_orders(client, bob, 2))
    for user, own, other in ((alice, alices, bobs), (bob, bobs, alices)):
        r = await gql(client, ALL_PATHS, user=user)
        got = data(r)
        assert {o["id"] for o in got["me"]["orders"]} == own
        assert {o["id"] for o in got["again"]["orders"]} == own
        assert got["me"]["id"] == user["id"]
        assert not any(order_id in r.text for order_id in other)


@pytest.mark.parametrize(
    "query",
    [
        "{ me { passwordHash } }",
        "{ me { password_hash } }",
        "{ me { flagged } }",
        "{ me { orders { userId } } }",
        "{ me { orders { user { email } } } }",
        "{ me { orders { items { product { orders { id } } } } } }",
        "{ products { orders { id } } }",
        "{ orders { id } }",
        '{ order(id: "00000000-0000-4000-8000-000000000000") { id } }',
        '{ user(id: "00000000-0000-4000-8000-000000000000") { email } }',
        "{ users { email } }",
        '{ node(id: "x") { id } }',
        '{ me { orders(userId: "00000000-0000-4000-8000-000000000000") { id } } }',
        '{ me(id: "00000000-0000-4000-8000-000000000000") { id } }',
        "{ sessions { id } }",
    ],
)
async def test_fields_and_arguments_outside_the_allowlist_are_a_400(
    client: Client, query: str
) -> None:
    user = await client.user()
    await place_orders(client, user, 1)
    body = assert_problem(await gql(client, query, user=user), 400, "#/query")
    assert all(
        e["detail"].startswith(("Cannot query field", "Unknown argument")) for e in body["errors"]
    ), body


async def test_nothing_in_any_answer_looks_like_a_password_hash(client: Client) -> None:
    user = await client.user()
    await place_orders(client, user, 1)
    query = """{ me { id email name role createdAt orders { id status items { productId
      product { id name priceCents currency } } shippingAddress { line1 city postcode country }
      promoCode subtotalCents discountCents totalCents currency createdAt cursor } }
      products { id name priceCents currency cursor } }"""
    r = await gql(client, query, user=user)
    data(r)
    assert "argon2" not in r.text
    assert user["password"] not in r.text


async def test_me_is_the_account_the_token_names(client: Client) -> None:
    alice = await client.user(name="Alice")
    bob = await client.user(name="Bob")
    for user in (alice, bob):
        me: dict[str, Any] = data(await gql(client, "{ me { id email name } }", user=user))["me"]
        assert me == {"id": user["id"], "email": user["email"], "name": user["name"]}

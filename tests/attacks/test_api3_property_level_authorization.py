"""API3:2023 Broken Object Property Level Authorization.

The attacker writes properties only the server may set (mass assignment: a role, an id,
a price, a total) and reads answers for properties nobody should see (excessive data
exposure: a password hash, an owner, a flag). The defence: strict request schemas that
name every field they refuse, prices and totals computed on the server, and responses
(REST and GraphQL) built from allowlists."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.bodies import order_body
from tests.api.graphql.conftest import data, gql, place_orders
from tests.api.problem import assert_problem
from tests.api.test_auth import _register
from tests.api.test_users import USER_FIELDS
from tests.conftest import PASSWORD, Client

# ------------------------------------------------------------------- mass assignment


@pytest.mark.parametrize(
    "extra", [{"role": "admin"}, {"id": "00000000-0000-4000-8000-000000000000"}, {"flagged": True}]
)
async def test_registration_cannot_choose_server_fields(
    client: Client, extra: dict[str, Any]
) -> None:
    """Attacker: signs up with a role, id or flag set. Defence: strict schema; 400 names it."""
    r = await client.post(
        "/api/auth/register",
        json={"email": "mass@example.com", "password": PASSWORD, "name": "M", **extra},
    )
    assert_problem(r, 400, f"#/{next(iter(extra))}")
    assert_problem(await client.post("/api/auth/login", json={"email": "mass@example.com",
                   "password": PASSWORD}), 401)  # fmt: skip


@pytest.mark.parametrize(
    "extra",
    [
        {"role": "admin"},
        {"email": "someone-else@example.com"},
        {"id": "00000000-0000-4000-8000-000000000000"},
        {"passwordHash": "$argon2id$v=19$m=1024,t=1,p=1$x$y"},
        {"flagged": False},
        {"createdAt": "2000-01-01T00:00:00Z"},
    ],
    ids=lambda extra: next(iter(extra)),
)
async def test_patch_me_refuses_read_only_fields_and_names_them(
    client: Client, extra: dict[str, Any]
) -> None:
    """Attacker: PATCHes a role, email or id onto the account. Defence: 400, nothing changes."""
    user = await client.user(name="Before")
    r = await client.patch(
        "/api/users/me", json={"name": "After", **extra}, headers=user["headers"]
    )
    (field,) = extra
    problem = assert_problem(r, 400, f"#/{field}")
    assert problem["errors"][0]["detail"] == "is not a field you can set"
    me = (await client.get("/api/users/me", headers=user["headers"])).json()
    assert (me["name"], me["role"], me["email"], me["id"]) == (
        "Before", "user", user["email"], user["id"],
    )  # fmt: skip


async def test_every_unknown_field_is_named_at_once(client: Client) -> None:
    """Attacker: sets a role, totals and prices in an order. Defence: every one named in a 400."""
    user = await client.user()
    body = order_body((await client.product_ids())[:1], role="admin", totalCents=0)
    body["items"][0]["unitPriceCents"] = 0
    body["shippingAddress"]["zip"] = "12345"
    r = await client.post("/api/orders", json=body, headers=user["headers"])
    assert_problem(
        r, 400, "#/role", "#/totalCents", "#/items/0/unitPriceCents", "#/shippingAddress/zip"
    )


async def test_totals_are_computed_by_the_server_from_catalogue_prices(client: Client) -> None:
    """Attacker: wants to choose what an order costs. Defence: catalogue prices, server totals."""
    user = await client.user()
    products = {p["id"]: p for p in (await client.get("/api/products?limit=100")).json()["items"]}
    ids = list(products)[:3]
    body = order_body(ids, 3, 7, 1, promoCode="WELCOME10")
    r = await client.post("/api/orders", json=body, headers=user["headers"])
    assert r.status_code == 201, r.text
    order = r.json()
    subtotal = sum(q * products[p]["priceCents"] for p, q in zip(ids, (3, 7, 1), strict=True))
    assert [i["unitPriceCents"] for i in order["items"]] == [products[p]["priceCents"] for p in ids]
    assert order["subtotalCents"] == subtotal
    assert order["discountCents"] == subtotal * 10 // 100
    assert order["totalCents"] == subtotal - subtotal * 10 // 100
    assert order["promoCode"] == "WELCOME10"
    assert order["currency"] == "USD"


# ----------------------------------------------------------- excessive data exposure


async def test_a_registered_user_gets_exactly_the_user_allowlist(client: Client) -> None:
    """Attacker: reads the sign-up answer for more fields. Defence: exactly the user allowlist."""
    r = await _register(client, "shape@example.com")
    assert set(r.json()) == {"id", "email", "name", "role", "createdAt"}
    assert r.json()["role"] == "user"


async def test_me_is_exactly_the_user_allowlist(client: Client) -> None:
    """Attacker: reads their account for more fields. Defence: exactly the user allowlist."""
    user = await client.user(name="Ada Lovelace")
    r = await client.get("/api/users/me", headers=user["headers"])
    assert r.status_code == 200
    me = r.json()
    assert set(me) == USER_FIELDS
    assert me["id"] == user["id"]
    assert me["name"] == "Ada Lovelace"
    assert me["role"] == "user"
    assert me["createdAt"].endswith("Z")


async def test_the_order_response_is_exactly_the_contract_allowlist(client: Client) -> None:
    """Attacker: reads an order for internal fields. Defence: exactly the contract allowlist."""
    user = await client.user()
    body = order_body((await client.product_ids())[:1])
    order = (await client.post("/api/orders", json=body, headers=user["headers"])).json()
    assert set(order) == {
        "id", "status", "items", "shippingAddress", "promoCode", "subtotalCents",
        "discountCents", "totalCents", "currency", "createdAt",
    }  # fmt: skip
    assert set(order["items"][0]) == {"productId", "quantity", "unitPriceCents"}
    assert set(order["shippingAddress"]) == {"line1", "city", "postcode", "country"}


# ---------------------------------------------------------------------------- GraphQL


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
    """Attacker: maps the schema for extra fields or arguments. Defence: only the allowlist."""
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
    """Attacker: asks for passwordHash, userId, others' orders. Defence: no such field, 400."""
    user = await client.user()
    await place_orders(client, user, 1)
    body = assert_problem(await gql(client, query, user=user), 400, "#/query")
    assert all(
        e["detail"].startswith(("Cannot query field", "Unknown argument")) for e in body["errors"]
    ), body


async def test_nothing_in_any_answer_looks_like_a_password_hash(client: Client) -> None:
    """Attacker: reads every field there is, for a hash. Defence: no field ever carries one."""
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

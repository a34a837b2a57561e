"""POST /api/orders: the CreateOrder contract, strictly, and server-side totals."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from bastion.app import BastionApp
from bastion.db import catalogue
from tests.api.bodies import DELETE, MISSING_PRODUCT, Path, Product, edited, order_body
from tests.api.problem import assert_problem, order_count
from tests.conftest import Client

P0 = Product(0)
ITEM = {"productId": P0, "quantity": 1}

# (where, what) -> 201. Each row is one edit of the valid body.
VALID: list[Any] = [
    pytest.param(
        (),
        {
            "items": [ITEM],
            "shippingAddress": {"line1": "12345", "city": "Ay", "postcode": "123", "country": "US"},
        },
        id="every-field-at-its-minimum",
    ),
    pytest.param(("items", 0, "quantity"), 100, id="quantity-100"),
    pytest.param(("items",), [ITEM] * 50, id="50-items"),
    pytest.param(("items",), [ITEM, {"productId": Product(1), "quantity": 3}], id="two-products"),
    pytest.param(("items",), [ITEM, ITEM], id="same-product-twice"),
    pytest.param(("shippingAddress", "line1"), "x" * 200, id="line1-200-chars"),
    pytest.param(("shippingAddress", "line1"), "  12345  ", id="line1-5-chars-padded"),
    pytest.param(("shippingAddress", "city"), "c" * 100, id="city-100-chars"),
    pytest.param(("shippingAddress", "postcode"), "nw1 6xe", id="postcode-lower-case"),
    pytest.param(("shippingAddress", "postcode"), "1234567890", id="postcode-10-chars"),
    pytest.param(("shippingAddress", "postcode"), "AB-12", id="postcode-with-hyphen"),
    pytest.param(("shippingAddress", "country"), "IN", id="country-IN"),
    pytest.param(("shippingAddress", "country"), "AU", id="country-AU"),
    pytest.param(("promoCode",), "WELCOME10", id="active-promo-code"),
    pytest.param(("promoCode",), None, id="promo-code-null"),
]

# (where, what, the pointers the 400 must name).
INVALID: list[Any] = [
    # the body as a whole
    pytest.param((), [], ["#/"], id="body-is-an-array"),
    pytest.param((), "order", ["#/"], id="body-is-a-string"),
    pytest.param((), 1, ["#/"], id="body-is-a-number"),
    pytest.param((), None, ["#/"], id="body-is-null"),
    pytest.param((), {}, ["#/items", "#/shippingAddress"], id="body-is-empty"),
    # items
    pytest.param(("items",), DELETE, ["#/items"], id="items-missing"),
    pytest.param(("items",), [], ["#/items"], id="items-empty"),
    pytest.param(("items",), [ITEM] * 51, ["#/items"], id="51-items"),
    pytest.param(("items",), ITEM, ["#/items"], id="items-is-an-object"),
    pytest.param(("items",), "x", ["#/items"], id="items-is-a-string"),
    pytest.param(("items", 0), "x", ["#/items/0"], id="item-is-a-string"),
    pytest.param(
        ("items", 0, "productId"), DELETE, ["#/items/0/productId"], id="productId-missing"
    ),
    pytest.param(("items", 0, "quantity"), DELETE, ["#/items/0/quantity"], id="quantity-missing"),
    pytest.param(("items", 0, "quantity"), "1", ["#/items/0/quantity"], id="quantity-string"),
    pytest.param(("items", 0, "quantity"), 1.5, ["#/items/0/quantity"], id="quantity-fraction"),
    pytest.param(("items", 0, "quantity"), 1.0, ["#/items/0/quantity"], id="quantity-float"),
    pytest.param(("items", 0, "quantity"), True, ["#/items/0/quantity"], id="quantity-true"),
    pytest.param(("items", 0, "quantity"), None, ["#/items/0/quantity"], id="quantity-null"),
    pytest.param(("items", 0, "quantity"), [1], ["#/items/0/quantity"], id="quantity-array"),
    pytest.param(("items", 0, "quantity"), 0, ["#/items/0/quantity"], id="quantity-0"),
    pytest.param(("items", 0, "quantity"), 101, ["#/items/0/quantity"], id="quantity-101"),
    pytest.param(("items", 0, "quantity"), -1, ["#/items/0/quantity"], id="quantity-negative"),
    pytest.param(("items", 0, "quantity"), 10**30, ["#/items/0/quantity"], id="quantity-10e30"),
    pytest.param(
        ("items", 0, "productId"), "abc", ["#/items/0/productId"], id="productId-not-uuid"
    ),
    pytest.param(("items", 0, "productId"), 42, ["#/items/0/productId"], id="productId-number"),
    pytest.param(("items", 0, "productId"), None, ["#/items/0/productId"], id="productId-null"),
    pytest.param(
        ("items", 0, "productId"),
        MISSING_PRODUCT,
        ["#/items/0/productId"],
        id="productId-of-no-product",
    ),
    pytest.param(
        ("items",),
        [ITEM, {"productId": MISSING_PRODUCT, "quantity": 1}],
        ["#/items/1/productId"],
        id="second-productId-of-no-product",
    ),
    pytest.param(
        ("items", 0, "unitPriceCents"), 1, ["#/items/0/unitPriceCents"], id="item-sets-its-price"
    ),
    pytest.param(("items", 0, "discount"), 99, ["#/items/0/discount"], id="item-unknown-field"),
    # shippingAddress
    pytest.param(("shippingAddress",), DELETE, ["#/shippingAddress"], id="address-missing"),
    pytest.param(
        ("shippingAddress",), "221B Baker Street", ["#/shippingAddress"], id="address-is-a-string"
    ),
    pytest.param(
        ("shippingAddress", "line1"),
        "   abcd   ",
        ["#/shippingAddress/line1"],
        id="line1-4-chars-once-trimmed",
    ),
    pytest.param(
        ("shippingAddress", "line1"), "x" * 201, ["#/shippingAddress/line1"], id="line1-201-chars"
    ),
    pytest.param(
        ("shippingAddress", "line1"), 12345, ["#/shippingAddress/line1"], id="line1-number"
    ),
    pytest.param(
        ("shippingAddress", "line1"), DELETE, ["#/shippingAddress/line1"], id="line1-missing"
    ),
    pytest.param(
        ("shippingAddress", "line1"),
        "1 Main\x00Street",
        ["#/shippingAddress/line1"],
        id="line1-control-character",
    ),
    pytest.param(
        ("shippingAddress", "city"),
        " A ",
        ["#/shippingAddress/city"],
        id="city-1-char-once-trimmed",
    ),
    pytest.param(
        ("shippingAddress", "city"), "c" * 101, ["#/shippingAddress/city"], id="city-101-chars"
    ),
    pytest.param(
        ("shippingAddress", "postcode"), "AB", ["#/shippingAddress/postcode"], id="postcode-2-chars"
    ),
    pytest.param(
        ("shippingAddress", "postcode"),
        "12345678901",
        ["#/shippingAddress/postcode"],
        id="postcode-11-chars",
    ),
    pytest.param(
        ("shippingAddress", "postcode"),
        "AB_12",
        ["#/shippingAddress/postcode"],
        id="postcode-underscore",
    ),
    pytest.param(
        ("shippingAddress", "postcode"), 12345, ["#/shippingAddress/postcode"], id="postcode-number"
    ),
    pytest.param(
        ("shippingAddress", "country"), "gb", ["#/shippingAddress/country"], id="country-lower-case"
    ),
    pytest.param(
        ("shippingAddress", "country"), "FR", ["#/shippingAddress/country"], id="country-not-served"
    ),
    pytest.param(
        ("shippingAddress", "country"), DELETE, ["#/shippingAddress/country"], id="country-missing"
    ),
    pytest.param(
        ("shippingAddress", "state"), "CA", ["#/shippingAddress/state"], id="address-unknown-field"
    ),
    # promoCode
    pytest.param(("promoCode",), "welcome10", ["#/promoCode"], id="promo-lower-case"),
    pytest.param(("promoCode",), "ABC", ["#/promoCode"], id="promo-3-chars"),
    pytest.param(("promoCode",), "A" * 21, ["#/promoCode"], id="promo-21-chars"),
    pytest.param(("promoCode",), 10, ["#/promoCode"], id="promo-number"),
    pytest.param(("promoCode",), "EXPIRED-2020", ["#/promoCode"], id="promo-expired"),
    pytest.param(("promoCode",), "NOSUCHCODE", ["#/promoCode"], id="promo-unknown"),
    pytest.param(("promoCode",), "WELCOME10\n", ["#/promoCode"], id="promo-trailing-newline"),
    pytest.param(("promoCode",), " WELCOME10", ["#/promoCode"], id="promo-leading-space"),
    pytest.param(
        ("shippingAddress", "postcode"),
        "NW1 6XE\n",
        ["#/shippingAddress/postcode"],
        id="postcode-trailing-newline",
    ),
    # fields only the server sets (mass assignment)
    pytest.param(("id",), "11111111-1111-4111-8111-111111111111", ["#/id"], id="sets-id"),
    pytest.param(("status",), "paid", ["#/status"], id="sets-status"),
    pytest.param(("userId",), MISSING_PRODUCT, ["#/userId"], id="sets-owner"),
    pytest.param(("subtotalCents",), 1, ["#/subtotalCents"], id="sets-subtotal"),
    pytest.param(("discountCents",), 999999, ["#/discountCents"], id="sets-discount"),
    pytest.param(("totalCents",), 0, ["#/totalCents"], id="sets-total"),
    pytest.param(("currency",), "INR", ["#/currency"], id="sets-currency"),
    pytest.param(("createdAt",), "2000-01-01T00:00:00Z", ["#/createdAt"], id="sets-createdAt"),
]


async def test_the_table_has_at_least_40_bodies() -> None:
    assert len(VALID) + len(INVALID) >= 40


@pytest.mark.parametrize(("path", "value"), VALID)
async def test_a_valid_create_order_body_is_accepted(
    client: Client, path: Path, value: Any
) -> None:
    user = await client.user()
    body = edited(await client.product_ids(), path, value)
    r = await client.post("/api/orders", json=body, headers=user["headers"])
    assert r.status_code == 201, r.text
    order = r.json()
    assert r.headers["location"] == f"/api/orders/{order['id']}"
    assert [(i["productId"], i["quantity"]) for i in order["items"]] == [
        (i["productId"].lower(), i["quantity"]) for i in body["items"]
    ]
    assert order["status"] == "pending"


@pytest.mark.parametrize(("path", "value", "pointers"), INVALID)
async def test_an_invalid_create_order_body_is_refused_with_pointers(
    client: Client, path: Path, value: Any, pointers: list[str]
) -> None:
    user = await client.user()
    body = edited(await client.product_ids(), path, value)
    r = await client.post("/api/orders", json=body, headers=user["headers"])
    assert_problem(r, 400, *pointers)
    assert await order_count(client, user["headers"]) == 0


@pytest.mark.parametrize(
    ("path", "value", "detail"),
    [
        (("items", 0, "productId"), "abc", "must be a UUID"),
        (("items", 0, "productId"), MISSING_PRODUCT, "names no product"),
        (("items", 0, "quantity"), "1", "must be an integer"),
        (("items", 0, "quantity"), 0, "must be at least 1"),
        (("items", 0, "quantity"), 101, "must be at most 100"),
        (("items",), [], "must have at least 1 item"),
        (("items",), [ITEM] * 51, "must have at most 50 items"),
        (("shippingAddress", "line1"), "   abcd   ", "must be at least 5 characters"),
        (("shippingAddress", "country"), "gb", "must be one of IN, US, GB, AU"),
        (("promoCode",), "EXPIRED-2020", "is unknown, inactive or expired"),
        (("status",), "paid", "is not a field you can set"),
    ],
)
async def test_validation_details_are_short_and_human(
    client: Client, path: Path, value: Any, detail: str
) -> None:
    user = await client.user()
    body = edited(await client.product_ids(), path, value)
    r = await client.post("/api/orders", json=body, headers=user["headers"])
    problem = assert_problem(r, 400)
    assert [e["detail"] for e in problem["errors"]] == [detail]


async def test_address_text_is_stored_trimmed_and_the_postcode_upper_cased(
    client: Client,
) -> None:
    user = await client.user()
    body = order_body((await client.product_ids())[:1])
    body["shippingAddress"] = {
        "line1": "   12345   ",
        "city": "  Leeds ",
        "postcode": "ls1 4ap",
        "country": "GB",
    }
    r = await client.post("/api/orders", json=body, headers=user["headers"])
    assert r.status_code == 201, r.text
    stored = await client.get(f"/api/orders/{r.json()['id']}", headers=user["headers"])
    assert stored.json()["shippingAddress"] == {
        "line1": "12345",
        "city": "Leeds",
        "postcode": "LS1 4AP",
        "country": "GB",
    }


async def test_the_discount_is_rounded_down_to_whole_cents(app: BastionApp, client: Client) -> None:
    """10 % of 3 x 333 = 99.9 cents: the discount is 99, the customer keeps the fraction."""
    product_id = str(uuid.uuid4())
    await catalogue.upsert_product(
        app.services.db,
        product_id=product_id,
        name="Odd-priced widget",
        price_cents=333,
        currency="USD",
        now=datetime.now(UTC),
    )
    user = await client.user()
    body = order_body([product_id], 3, promoCode="WELCOME10")
    r = await client.post("/api/orders", json=body, headers=user["headers"])
    assert r.status_code == 201, r.text
    order = r.json()
    assert (order["subtotalCents"], order["discountCents"], order["totalCents"]) == (999, 99, 900)


async def test_an_order_without_a_promo_code_has_no_discount(client: Client) -> None:
    user = await client.user()
    body = order_body((await client.product_ids())[:1], 2)
    order = (await client.post("/api/orders", json=body, headers=user["headers"])).json()
    assert order["promoCode"] is None
    assert order["discountCents"] == 0
    assert order["totalCents"] == order["subtotalCents"] == 2 * order["items"][0]["unitPriceCents"]


async def test_creating_an_order_needs_a_bearer_token(client: Client) -> None:
    body = order_body((await client.product_ids())[:1])
    r = await client.post("/api/orders", json=body)
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_a_refused_promo_code_is_a_security_event(
    client: Client, events: list[dict[str, Any]]
) -> None:
    user = await client.user()
    body = order_body((await client.product_ids())[:1], promoCode="EXPIRED-2020")
    r = await client.post("/api/orders", json=body, headers=user["headers"])
    assert_problem(r, 400, "#/promoCode")
    assert any(e["event"] == "input.rejected" and e["user_id"] == user["id"] for e in events)


async def test_an_order_cannot_mix_currencies(app: BastionApp, client: Client) -> None:
    pounds = str(uuid.uuid4())
    await catalogue.upsert_product(
        app.services.db,
        product_id=pounds,
        name="Tea caddy",
        price_cents=1200,
        currency="GBP",
        now=datetime.now(UTC),
    )
    user = await client.user()
    products = (await client.get("/api/products?limit=100")).json()["items"]
    dollars = next(p["id"] for p in products if p["currency"] == "USD")
    body = order_body([dollars, pounds])
    r = await client.post("/api/orders", json=body, headers=user["headers"])
    assert_problem(r, 400, "#/items")
    assert await order_count(client, user["headers"]) == 0

"""What a client can send that is not a valid request: malformed JSON, the wrong media
type, bodies up to the limit, unknown paths and methods. Bodies over the limit and the
sweep of odd inputs (never a 500) are in tests/attacks/ (API4 and API8)."""

from __future__ import annotations

import json

import pytest

from tests.api.bodies import order_body
from tests.api.problem import assert_problem
from tests.conftest import Client

LIMIT = 10240


def _big_order(product_id: str, size: int) -> bytes:
    """A JSON order body of exactly ``size`` bytes (the padding is in line1)."""
    body = order_body([product_id])
    body["shippingAddress"]["line1"] = ""
    raw = json.dumps(body).encode()
    body["shippingAddress"]["line1"] = "x" * (size - len(raw))
    raw = json.dumps(body).encode()
    assert len(raw) == size
    return raw


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"items": [}', b"{'items': []}", b"\xff\xfe", b'{"a": 1,}', b"nul", b"\x00"],
    ids=["truncated", "bad-array", "single-quotes", "not-utf8", "trailing-comma", "nul", "NUL"],
)
async def test_malformed_json_is_a_400(client: Client, raw: bytes) -> None:
    user = await client.user()
    r = await client.post(
        "/api/orders",
        content=raw,
        headers={**user["headers"], "Content-Type": "application/json"},
    )
    assert_problem(r, 400)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/xml", "application/jsonx", None],
)  # fmt: skip
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/orders"), ("POST", "/api/auth/login"), ("PATCH", "/api/users/me")],
)
async def test_a_body_that_is_not_json_is_a_415(
    client: Client, method: str, path: str, content_type: str | None
) -> None:
    user = await client.user()
    headers = dict(user["headers"])
    if content_type is not None:
        headers["Content-Type"] = content_type
    r = await client.request(method, path, content=b'{"name": "x"}', headers=headers)
    assert_problem(r, 415)


async def test_a_json_media_type_with_a_charset_is_accepted(client: Client) -> None:
    user = await client.user()
    r = await client.patch(
        "/api/users/me",
        content=b'{"name": "Charset"}',
        headers={**user["headers"], "Content-Type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 200


@pytest.mark.parametrize("size", [LIMIT - 1, LIMIT])
async def test_a_body_of_up_to_10240_bytes_is_read(client: Client, size: int) -> None:
    user = await client.user()
    raw = _big_order((await client.product_ids())[0], size)
    r = await client.post(
        "/api/orders", content=raw, headers={**user["headers"], "Content-Type": "application/json"}
    )
    # line1 is far over 200 characters: the body was parsed and validated.
    assert_problem(r, 400, "#/shippingAddress/line1")


@pytest.mark.parametrize(
    "product_id",
    ["0", "-1", "%00", "%ff", "null", "a" * 5000, "..%2F..%2Fadmin", "{}", "1%20OR%201%3D1"],
)
async def test_odd_product_ids_are_not_found(client: Client, product_id: str) -> None:
    r = await client.get(f"/api/products/{product_id}")
    assert r.status_code == 404, r.text


async def test_an_existing_product_reads_back_and_a_missing_one_is_404(client: Client) -> None:
    products = (await client.get("/api/products")).json()["items"]
    r = await client.get(f"/api/products/{products[0]['id']}")
    assert r.json() == products[0]
    assert set(r.json()) == {"id", "name", "priceCents", "currency"}
    assert_problem(await client.get("/api/products/00000000-0000-4000-8000-000000000000"), 404)


async def test_an_unknown_api_path_is_a_problem_404(client: Client) -> None:
    assert_problem(await client.get("/api/nope"), 404)


@pytest.mark.parametrize(("method", "path"), [("DELETE", "/api/products"), ("PUT", "/api/orders")])
async def test_a_method_a_route_does_not_have_is_a_problem_405(
    client: Client, method: str, path: str
) -> None:
    r = await client.request(method, path)
    assert_problem(r, 405)
    assert r.headers["allow"]

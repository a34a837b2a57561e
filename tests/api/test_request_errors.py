"""What a client can send that is not a valid request: malformed JSON, the wrong media
type, bodies over the limit, and a sweep of odd inputs. Never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

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


async def test_a_body_over_10240_bytes_with_content_length_is_a_413(client: Client) -> None:
    user = await client.user()
    raw = _big_order((await client.product_ids())[0], LIMIT + 1)
    r = await client.post(
        "/api/orders", content=raw, headers={**user["headers"], "Content-Type": "application/json"}
    )
    assert r.request.headers["content-length"] == str(LIMIT + 1)
    assert_problem(r, 413)


async def test_a_streamed_body_over_10240_bytes_is_a_413(client: Client) -> None:
    user = await client.user()
    raw = _big_order((await client.product_ids())[0], 4 * LIMIT)
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 1024):
            sent.append(start)
            yield raw[start : start + 1024]

    r = await client.post(
        "/api/orders",
        content=chunks(),
        headers={**user["headers"], "Content-Type": "application/json"},
    )
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert_problem(r, 413)
    # Refused as the bytes came in, not after reading everything.
    assert len(sent) <= LIMIT // 1024 + 2


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/login", "/api/users/me"])
async def test_the_size_limit_holds_on_every_route(client: Client, path: str) -> None:
    user = await client.user()
    raw = json.dumps({"name": "x" * (LIMIT + 10)}).encode()
    r = await client.request(
        "PATCH" if path.endswith("/me") else "POST",
        path,
        content=raw,
        headers={**user["headers"], "Content-Type": "application/json"},
    )
    assert_problem(r, 413)


async def test_the_413_comes_before_authentication_and_parsing(client: Client) -> None:
    r = await client.post(
        "/api/orders",
        content=b"{" * (LIMIT + 1),
        headers={"Content-Type": "application/json"},
    )
    assert_problem(r, 413)


NESTED = "[" * 5000 + "]" * 5000
ODD_VALUES: list[Any] = [
    pytest.param(b"[]", id="array"),
    pytest.param(b'"x"', id="string"),
    pytest.param(b"1", id="number"),
    pytest.param(b"null", id="null"),
    pytest.param(b"true", id="true"),
    pytest.param(b"", id="empty"),
    pytest.param(NESTED.encode(), id="deeply-nested-array"),
    pytest.param(('{"items": ' + NESTED + "}").encode(), id="deeply-nested-field"),
    pytest.param(b'{"items": [{"productId": "x", "quantity": 1e400}]}', id="quantity-1e400"),
    pytest.param(b'{"items": [{"productId": "x", "quantity": NaN}]}', id="quantity-NaN"),
    pytest.param(b'{"items": [{"productId": "x", "quantity": -Infinity}]}', id="quantity-inf"),
    pytest.param(b'{"items": [{"productId": "x", "quantity": ' + b"9" * 4000 + b"}]}",
                 id="quantity-4000-digits"),
    pytest.param(b'{"promoCode": "AB\\u0000CD"}', id="nul-in-string"),
    pytest.param(b'{"promoCode": "AB\\ud800CD"}', id="lone-surrogate"),
    pytest.param(b'{"a\\u0000b": 1}', id="nul-in-field-name"),
    pytest.param(b'{"\\ud800": 1}', id="surrogate-field-name"),
    pytest.param(b'{"items": 1, "items": []}', id="duplicate-keys"),
    pytest.param(b'{"__proto__": {"admin": true}}', id="proto-pollution"),
    pytest.param(b'{"shippingAddress": {"line1": "\\ud83d\\ude00\\ud83d"}}', id="broken-pair"),
]  # fmt: skip


@pytest.mark.parametrize("raw", ODD_VALUES)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/orders"),
        ("POST", "/api/auth/register"),
        ("POST", "/api/auth/login"),
        ("PATCH", "/api/users/me"),
        ("POST", "/api/users/me/password"),
    ],
)
async def test_odd_bodies_get_a_4xx_never_a_500(
    client: Client, method: str, path: str, raw: bytes
) -> None:
    user = await client.user()
    r = await client.request(
        method, path, content=raw, headers={**user["headers"], "Content-Type": "application/json"}
    )
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "query",
    [
        "limit=1e400",
        "limit=%00",
        "limit=1&limit=2",
        "limit[]=1",
        "limit=" + "9" * 5000,
        "cursor=%00",
        "cursor=%ff%fe",
        "cursor[$ne]=1",
        "cursor=" + "A" * 512,
        "cursor=====",
    ],
)
@pytest.mark.parametrize("path", ["/api/products", "/api/orders"])
async def test_odd_query_strings_never_give_a_500(client: Client, path: str, query: str) -> None:
    user = await client.user()
    r = await client.get(f"{path}?{query}", headers=user["headers"])
    assert r.status_code < 500, r.text


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


@pytest.mark.parametrize(
    "raw",
    [NESTED.encode(), b'{"items": [{"quantity": ' + b"9" * 5000 + b"}]}"],
    ids=["nested-5000-deep", "integer-of-5000-digits"],
)
async def test_json_the_parser_gives_up_on_is_reported_as_malformed(
    client: Client, events: list[dict[str, Any]], raw: bytes
) -> None:
    user = await client.user()
    r = await client.post(
        "/api/orders", content=raw, headers={**user["headers"], "Content-Type": "application/json"}
    )
    assert assert_problem(r, 400)["detail"] == "The request body is not valid JSON."
    assert [e["reason"] for e in events if e["event"] == "input.rejected"] == ["malformed JSON"]


async def test_an_unknown_api_path_is_a_problem_404(client: Client) -> None:
    assert_problem(await client.get("/api/nope"), 404)


@pytest.mark.parametrize(("method", "path"), [("DELETE", "/api/products"), ("PUT", "/api/orders")])
async def test_a_method_a_route_does_not_have_is_a_problem_405(
    client: Client, method: str, path: str
) -> None:
    r = await client.request(method, path)
    assert_problem(r, 405)
    assert r.headers["allow"]

"""API8:2023 Security Misconfiguration.

The attacker looks for what a careless deployment leaves open: responses without the
security headers, headers that name the software, a reusable CSP nonce, trusted
X-Forwarded-For, GraphQL introspection and "did you mean" hints in production, odd input
that ends in a 500 and a stack trace, and production started on weak secrets. The
defence: secure defaults that hold on every response and refuse to start otherwise."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.app import BastionApp
from bastion.config import ConfigError, load_settings
from bastion.security.headers import SecurityHeadersMiddleware
from tests.api.graphql.conftest import gql
from tests.api.graphql.test_modes import INTROSPECTION, INTROSPECTION_IDS
from tests.api.problem import assert_problem
from tests.auth.conftest import record_events
from tests.browser.live_server import live_server
from tests.conftest import Client, Clients, StartApp, client_for
from tests.security.test_headers import (
    SCRIPT_NONCE,
    app_sending,
    assert_contract_headers,
    call,
    headers_of,
    nonce_of,
)
from tests.test_config import SECRET_A, SECRET_B

# -------------------------------------------------------------------------- headers


Request = Callable[[Client], Awaitable[httpx.Response]]


async def api_ok(c: Client) -> httpx.Response:
    return await c.get("/api/products")


async def not_found(c: Client) -> httpx.Response:
    return await c.get("/api/no-such-thing")


async def unauthorized(c: Client) -> httpx.Response:
    return await c.get("/api/users/me", headers={"Authorization": "Bearer nonsense"})


async def too_large(c: Client) -> httpx.Response:
    return await c.post(
        "/api/auth/login",
        content=b"{" + b" " * 20_000 + b"}",
        headers={"content-type": "application/json"},
    )


async def wrong_media_type(c: Client) -> httpx.Response:
    return await c.post(
        "/api/auth/login", content=b"email=a", headers={"content-type": "text/plain"}
    )


async def invalid_body(c: Client) -> httpx.Response:
    return await c.post(
        "/api/auth/login", content=b"{not json", headers={"content-type": "application/json"}
    )


async def health(c: Client) -> httpx.Response:
    return await c.get("/healthz")


async def page(c: Client) -> httpx.Response:
    return await c.get("/")


async def script(c: Client) -> httpx.Response:
    return await c.get("/static/app.js")


async def stylesheet(c: Client) -> httpx.Response:
    return await c.get("/static/app.css")


async def missing_static(c: Client) -> httpx.Response:
    return await c.get("/static/nothing-here.js")


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        (api_ok, 200),
        (not_found, 404),
        (unauthorized, 401),
        (too_large, 413),
        (wrong_media_type, 415),
        (invalid_body, 400),
        (health, 200),
        (page, 200),
        (script, 200),
        (stylesheet, 200),
        (missing_static, 404),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
async def test_every_response_carries_the_contract_headers(
    client: Client, request_: Request, status: int
) -> None:
    """Attacker: looks for a response without the headers. Defence: every response has them."""
    response = await request_(client)
    assert response.status_code == status
    assert_contract_headers(response)


async def test_headers_naming_the_software_are_dropped_and_the_apps_own_values_replaced() -> None:
    """Attacker: fingerprints the software from headers. Defence: those headers are dropped."""
    app = app_sending(
        [
            (b"Server", b"uvicorn/0.35"),
            (b"X-Powered-By", b"FastAPI"),
            (b"X-Frame-Options", b"ALLOWALL"),
            (b"Content-Security-Policy", b"default-src *"),
            (b"content-type", b"text/plain"),
        ]
    )
    headers = headers_of(await call(SecurityHeadersMiddleware(app)))
    assert "server" not in headers
    assert "x-powered-by" not in headers
    assert headers["x-frame-options"] == ["SAMEORIGIN"]
    assert len(headers["content-security-policy"]) == 1
    assert headers["content-security-policy"][0].startswith("default-src 'self';")
    assert headers["content-type"] == ["text/plain"]


def test_a_real_server_names_no_software_and_sends_the_headers(tmp_path: Path) -> None:
    """Attacker: fingerprints a real server process. Defence: no Server header, all the rest.

    The ASGI server adds headers of its own outside the app (uvicorn's ``Server``);
    only a real process shows what leaves it."""
    with live_server(tmp_path) as server:
        responses = [
            httpx.get(f"{server.url}{path}") for path in ("/", "/static/app.js", "/api/nope")
        ]
        responses.append(httpx.post(f"{server.url}/api/auth/login", content=b"x" * 20_000))
    assert [r.status_code for r in responses] == [200, 200, 404, 413]
    for response in responses:
        assert_contract_headers(response)
    assert SCRIPT_NONCE.findall(responses[0].text) == [nonce_of(responses[0])]


async def test_the_nonce_is_fresh_for_every_response_and_at_least_128_bits(client: Client) -> None:
    """Attacker: reuses or guesses a CSP nonce. Defence: a fresh 128-bit nonce every response."""
    nonces = [nonce_of(await client.get(path)) for path in ("/", "/api/products", "/healthz") * 7]
    assert len(set(nonces)) == len(nonces)
    for nonce in nonces:
        assert "{" not in nonce
        assert len(base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))) >= 16


# ------------------------------------------------------------------------ client IP


async def test_spoofed_headers_from_an_untrusted_peer_change_nothing(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: spoofs X-Forwarded-For to dodge limits. Defence: trusted proxies only."""
    app = await start_guarded(rate_limit_global="3/minute", trusted_proxies="10.0.0.0/8")
    events = record_events(app)
    attacker = clients(app, "192.0.2.7")
    statuses = [
        (
            await attacker.get("/api/products", headers={"X-Forwarded-For": f"203.0.113.{n}"})
        ).status_code
        for n in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]
    assert {e["ip"] for e in events} == {"192.0.2.7"}


# ---------------------------------------------------------------- GraphQL in production


@pytest.mark.parametrize("query", INTROSPECTION, ids=INTROSPECTION_IDS)
async def test_introspection_is_a_400_in_production(production: BastionApp, query: str) -> None:
    """Attacker: dumps the schema by introspection. Defence: off in production; 400."""
    async with client_for(production) as client:
        body = assert_problem(await gql(client, query), 400, "#/query")
    assert any("introspection has been disabled" in e["detail"] for e in body["errors"]), body


async def test_field_suggestions_are_given_in_development_only(
    client: Client, production: BastionApp
) -> None:
    """Attacker: maps fields from "did you mean" hints. Defence: hints in development only."""
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


# -------------------------------------------------------------- odd input, no 500


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
    """Attacker: sends odd JSON (deep, huge, NaN, NUL) for a 500. Defence: a 4xx problem."""
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
    """Attacker: sends odd query strings (NUL, huge, arrays) for a 500. Defence: never one."""
    user = await client.user()
    r = await client.get(f"{path}?{query}", headers=user["headers"])
    assert r.status_code < 500, r.text


@pytest.mark.parametrize(
    "raw",
    [NESTED.encode(), b'{"items": [{"quantity": ' + b"9" * 5000 + b"}]}"],
    ids=["nested-5000-deep", "integer-of-5000-digits"],
)
async def test_json_the_parser_gives_up_on_is_reported_as_malformed(
    client: Client, events: list[dict[str, Any]], raw: bytes
) -> None:
    """Attacker: sends JSON the parser gives up on. Defence: malformed JSON, 400, logged."""
    user = await client.user()
    r = await client.post(
        "/api/orders", content=raw, headers={**user["headers"], "Content-Type": "application/json"}
    )
    assert assert_problem(r, 400)["detail"] == "The request body is not valid JSON."
    assert [e["reason"] for e in events if e["event"] == "input.rejected"] == ["malformed JSON"]


# ---------------------------------------------------------------- production secrets


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({}, "BASTION_ACCESS_SECRET"),
        ({"BASTION_ACCESS_SECRET": SECRET_A}, "BASTION_REFRESH_SECRET"),
        ({"BASTION_REFRESH_SECRET": SECRET_B}, "BASTION_ACCESS_SECRET"),
        ({"BASTION_ACCESS_SECRET": "a" * 31, "BASTION_REFRESH_SECRET": SECRET_B},
         "BASTION_ACCESS_SECRET"),
        ({"BASTION_ACCESS_SECRET": SECRET_A, "BASTION_REFRESH_SECRET": "short"},
         "BASTION_REFRESH_SECRET"),
        ({"BASTION_ACCESS_SECRET": SECRET_A, "BASTION_REFRESH_SECRET": SECRET_A},
         "BASTION_REFRESH_SECRET"),
    ],
    ids=["none", "no-refresh", "no-access", "short-access", "short-refresh", "same-secret"],
)  # fmt: skip
def test_production_refuses_missing_or_weak_secrets(
    env: pytest.MonkeyPatch, tmp_path: Path, values: dict[str, str], named: str
) -> None:
    """Attacker: forges tokens where the secret is weak. Defence: production will not start."""
    env.setenv("BASTION_ENV", "production")
    for name, value in values.items():
        env.setenv(name, value)
    with pytest.raises(ConfigError, match=named):
        load_settings()
    assert not (tmp_path / "var" / "secrets.json").exists()


# ------------------------------------------------------------------------- API docs

DOCS_PATHS = ["/docs", "/docs/assets/swagger-ui-bundle.js", "/openapi.json", "/redoc"]


async def test_production_serves_no_docs_and_no_api_document(production: BastionApp) -> None:
    """Attacker: maps the API from its published docs. Defence: none are served."""
    async with client_for(production) as client:
        for path in DOCS_PATHS:
            r = await client.get(path)
            assert r.status_code == 404, path
            assert "swagger" not in r.text.lower()

"""The global per-client limit and the RateLimit header fields, on both store backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.config import load_settings
from bastion.security.asgi import Receive, Scope, Send
from bastion.security.limits import Rate
from bastion.security.ratelimit import RateLimitConfig, RateLimitMiddleware
from bastion.store import MemoryStore
from tests.conftest import Clients, StartApp
from tests.security.conftest import WRONG, ratelimit_fields


def test_the_defaults_are_the_contracts(tmp_path: Path) -> None:
    settings = load_settings(var_dir=tmp_path)
    assert settings.rate_limit_global == Rate(100, 900)
    assert settings.rate_limit_auth == Rate(10, 3600)
    assert settings.lockout == Rate(5, 900)


async def test_the_default_global_policy_is_announced_in_draft_syntax(
    start_guarded: StartApp, clients: Clients
) -> None:
    app = await start_guarded(rate_limit_global="100/15minutes")
    r = await clients(app, "203.0.113.1").get("/api/products")
    assert r.status_code == 200
    assert r.headers["ratelimit-policy"] == '"global";q=100;w=900'
    assert r.headers["ratelimit"] == '"global";r=99;t=900'


async def test_each_client_address_has_its_own_budget(
    start_guarded: StartApp, clients: Clients
) -> None:
    app = await start_guarded(rate_limit_global="2/minute")
    first, second = clients(app, "203.0.113.1"), clients(app, "203.0.113.2")
    for _ in range(2):
        assert (await first.get("/api/products")).status_code == 200
    assert (await first.get("/api/products")).status_code == 429
    assert (await second.get("/api/products")).status_code == 200


async def test_ipv6_clients_are_counted_per_64_network(
    start_guarded: StartApp, clients: Clients
) -> None:
    app = await start_guarded(rate_limit_global="2/minute")
    assert (await clients(app, "2001:db8::1").get("/api/products")).status_code == 200
    assert (await clients(app, "2001:db8::ffff:2").get("/api/products")).status_code == 200
    # Another address of the same /64 is the same subscriber: no fresh budget.
    assert (await clients(app, "2001:db8::3").get("/api/products")).status_code == 429
    assert (await clients(app, "2001:db8:0:1::1").get("/api/products")).status_code == 200


REQUESTS: list[tuple[str, str, dict[str, Any], int]] = [
    ("GET", "/api/products", {}, 200),
    ("GET", "/api/no-such-thing", {}, 404),
    ("GET", "/api/users/me", {}, 401),
    ("GET", "/api/products?limit=0", {}, 400),
    ("POST", "/api/auth/login", {"content": b"x", "headers": {"content-type": "text/plain"}}, 415),
    (
        "POST",
        "/api/auth/login",
        {"content": b"{", "headers": {"content-type": "application/json"}},
        400,
    ),
    ("POST", "/api/orders", {"json": {"x": "y" * 20_000}}, 413),
]


async def test_every_api_response_carries_the_ratelimit_fields(
    start_guarded: StartApp, clients: Clients
) -> None:
    app = await start_guarded(rate_limit_global=f"{len(REQUESTS)}/minute")
    client = clients(app, "203.0.113.1")
    for i, (method, path, kwargs, status) in enumerate(
        [*REQUESTS, ("GET", "/api/products", {}, 429)]
    ):
        r = await client.request(method, path, **kwargs)
        assert r.status_code == status, (method, path, r.text)
        fields = ratelimit_fields(r.headers)
        assert fields["global"]["q"] == len(REQUESTS)
        assert fields["global"]["r"] == max(0, len(REQUESTS) - i - 1)


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_health_checks_are_exempt_and_carry_no_ratelimit_fields(
    start_guarded: StartApp, clients: Clients, path: str
) -> None:
    app = await start_guarded(rate_limit_global="2/minute")
    client = clients(app, "203.0.113.1")
    for _ in range(5):
        r = await client.get(path)
        assert r.status_code == 200
        assert "ratelimit" not in r.headers
        assert "ratelimit-policy" not in r.headers
    # ... and they did not spend the budget of the API.
    assert [(await client.get("/api/products")).status_code for _ in range(3)] == [200, 200, 429]


async def test_auth_responses_carry_the_global_and_the_auth_policy(
    start_guarded: StartApp, clients: Clients
) -> None:
    app = await start_guarded(rate_limit_global="100/15minutes", rate_limit_auth="10/hour")
    client = clients(app, "203.0.113.1")
    user = await client.register()
    body = {"email": user["email"], "password": WRONG}
    seen = []
    for _ in range(2):
        r = await client.post("/api/auth/login", json=body)
        assert r.status_code == 401
        seen.append(ratelimit_fields(r.headers))
    r = await client.post("/api/auth/login", json={**body, "password": user["password"]})
    assert r.status_code == 200
    seen.append(ratelimit_fields(r.headers))
    assert r.headers["ratelimit-policy"] == '"global";q=100;w=900, "auth";q=10;w=3600'
    # A failure spends a slot of the auth budget; the success gave its own back.
    assert [f["auth"]["r"] for f in seen] == [9, 8, 8]
    assert [f["global"]["r"] for f in seen] == [98, 97, 96]


async def test_the_middleware_limits_any_asgi_app() -> None:
    async def hello(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hi"})

    limited = RateLimitMiddleware(
        hello, RateLimitConfig(Rate(2, 60), prefix="/api/"), MemoryStore()
    )
    transport = httpx.ASGITransport(app=limited, client=("198.51.100.7", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        statuses = [(await client.get("/api/x")).status_code for _ in range(3)]
        other = await client.get("/elsewhere")
    assert statuses == [200, 200, 429]
    assert other.status_code == 200
    assert "ratelimit" not in other.headers

"""The ``Host`` header: never reflected into a redirect or any other header, and with
``BASTION_ALLOWED_HOSTS`` set, an unknown one is a 400 problem before routing."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bastion.app import BastionApp, create_app
from bastion.config import ConfigError
from bastion.security.asgi import Message
from bastion.security.hosts import AllowedHostsConfig
from tests.api.problem import assert_problem
from tests.conftest import PRODUCTION_SECRETS, Client, client_for

EVIL = "evil.example"
ALLOWED = "shop.example.com, *.api.example.com, [::1], 127.0.0.1:8443"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/orders/"),
        ("GET", "/api/products/"),
        ("GET", "/api/users/me/"),
        ("POST", "/api/auth/login/"),
        ("POST", "/api/graphql/"),
        ("GET", "/healthz/"),
        ("GET", "/static"),
    ],
)
async def test_a_trailing_slash_is_a_404_problem_never_a_redirect_to_the_host(
    client: Client, method: str, path: str
) -> None:
    """Attacker: sends its own Host to an unknown path, hoping for an absolute redirect
    to it (cache poisoning, open redirect). Defence: no slash redirects, 404."""
    r = await client.request(method, path, headers={"Host": EVIL})
    assert_problem(r, 404)
    assert "location" not in r.headers


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/", None),
        ("GET", "/api/products", None),
        ("GET", "/api/nothing-here", None),
        ("POST", "/api/auth/register", "user"),
        ("POST", "/api/auth/refresh", None),
        ("GET", "/docs", None),
        ("GET", "/openapi.json", None),
    ],
)
async def test_no_answer_carries_the_clients_host(
    client: Client, method: str, path: str, body: str | None
) -> None:
    """Attacker: a Host of its own on every kind of request. Defence: no header and no
    body is built from it (Location stays relative, e.g. after register)."""
    json: Any = None
    if body == "user":
        json = {"email": "host@example.com", "password": "Correct-Horse-Battery-42", "name": "H"}
    r = await client.request(method, path, headers={"Host": EVIL}, json=json)
    assert r.status_code < 500
    assert EVIL not in str(r.headers.raw).lower()
    assert EVIL.encode() not in r.content


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("shop.example.com", True),
        ("SHOP.Example.COM.", True),
        ("shop.example.com:8080", True),
        ("a.api.example.com", True),
        ("a.b.api.example.com:443", True),
        ("[::1]:8000", True),
        ("127.0.0.1:8443", True),
        ("127.0.0.1", False),
        ("127.0.0.1:8000", False),
        ("api.example.com", False),
        ("evilapi.example.com", False),
        ("shop.example.com.evil.example", False),
        ("shop.example.com@evil.example", False),
        ("shop.example.com evil.example", False),
        ("evil.example/shop.example.com", False),
        ("", False),
    ],
)
def test_allowed_hosts_match_names_wildcards_and_ports(host: str, allowed: bool) -> None:
    config = AllowedHostsConfig(tuple(p.strip() for p in ALLOWED.split(",")))
    assert config.allows(host) is allowed


@pytest.mark.parametrize(
    "entry", ["*", "*.", "https://shop.example.com", "shop example", "*.[::1]"]
)
def test_an_entry_that_is_not_a_host_is_a_config_error(make_settings: Any, entry: str) -> None:
    with pytest.raises(ConfigError, match="BASTION_ALLOWED_HOSTS"):
        make_settings(allowed_hosts=entry)


@pytest.fixture
async def guarded(start_app: Any) -> BastionApp:
    app: BastionApp = await start_app(allowed_hosts=ALLOWED)
    return app


@pytest.mark.parametrize("path", ["/api/products", "/api/orders/", "/", "/api/graphql"])
async def test_an_unknown_host_gets_a_400_problem_with_the_security_headers(
    guarded: BastionApp, path: str
) -> None:
    """Attacker: a Host the service is not published under. Defence: 400 before routing,
    as problem details with the request id and the security headers."""
    async with client_for(guarded) as c:
        r = await c.get(path, headers={"Host": EVIL})
        assert_problem(r, 400)
        assert r.headers["x-request-id"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" in r.headers
        ok = await c.get("/api/products", headers={"Host": "shop.example.com"})
        assert ok.status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_health_probes_answer_whatever_the_host(guarded: BastionApp, path: str) -> None:
    """A load balancer probes by the target's address: the probes are exempt."""
    async with client_for(guarded) as c:
        assert (await c.get(path, headers={"Host": "10.0.3.7:8000"})).status_code == 200


async def _raw(app: BastionApp, headers: list[tuple[bytes, bytes]]) -> int:
    """The status of a GET /api/products sent with exactly these headers."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/api/products",
        "raw_path": b"/api/products",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 443),
    }
    await app(scope, receive, send)
    return int(sent[0]["status"])


async def test_no_host_or_two_hosts_are_refused(guarded: BastionApp) -> None:
    """RFC 9112: a request with no Host, or more than one, is a 400."""
    good = (b"host", b"shop.example.com")
    assert await _raw(guarded, [good]) == 200
    assert await _raw(guarded, []) == 400
    assert await _raw(guarded, [good, (b"host", EVIL.encode())]) == 400
    assert await _raw(guarded, [good, good]) == 400


async def test_development_answers_any_host_when_the_list_is_empty(client: Client) -> None:
    assert (await client.get("/api/products", headers={"Host": EVIL})).status_code == 200


def test_production_warns_at_start_when_no_host_is_listed(
    make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bastion"):
        create_app(make_settings(env="production", **PRODUCTION_SECRETS))
    assert "BASTION_ALLOWED_HOSTS is empty" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bastion"):
        create_app(
            make_settings(env="production", allowed_hosts="shop.example.com", **PRODUCTION_SECRETS)
        )
    assert "BASTION_ALLOWED_HOSTS" not in caplog.text

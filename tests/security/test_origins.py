"""``BASTION_PUBLIC_ORIGIN``: the only origin whose pages may refresh or end a session
with the cookie; ``Host`` plays no part. Production starts without it (the storefront
is then not served, with a warning)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bastion.config import ConfigError
from bastion.security.origins import OriginPolicy, parse_origin
from tests.api.problem import assert_problem
from tests.auth.conftest import REFRESH_COOKIE, record_events, refresh_cookie_of
from tests.conftest import PRODUCTION_SECRETS, Client, client_for

STOREFRONT = "https://shop.example.com"


@pytest.mark.parametrize(
    ("text", "origin"),
    [
        ("https://shop.example.com", "https://shop.example.com"),
        ("HTTPS://Shop.Example.COM/", "https://shop.example.com"),
        ("https://shop.example.com:443", "https://shop.example.com"),
        ("https://shop.example.com:8443", "https://shop.example.com:8443"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://localhost", "http://localhost"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_an_origin_is_kept_in_the_form_browsers_send(text: str, origin: str) -> None:
    assert parse_origin(text) == origin


@pytest.mark.parametrize(
    "text",
    [
        "shop.example.com",
        "http://shop.example.com",
        "https://shop.example.com/shop",
        "https://shop.example.com?x=1",
        "https://shop.example.com#top",
        "https://user@shop.example.com",
        "https://shop.example.com:99999",
        "ftp://shop.example.com",
        "https://",
        "https://bücher.example",
        "null",
    ],
)
def test_a_value_that_is_not_a_browser_origin_is_a_config_error(
    make_settings: Any, text: str
) -> None:
    with pytest.raises(ConfigError, match="BASTION_PUBLIC_ORIGIN"):
        make_settings(public_origin=text)


@pytest.mark.parametrize(
    ("policy", "origin", "allowed"),
    [
        (OriginPolicy(STOREFRONT), None, True),
        (OriginPolicy(STOREFRONT), STOREFRONT, True),
        (OriginPolicy(STOREFRONT), "https://shop.example.com:8443", False),
        (OriginPolicy(STOREFRONT), "http://shop.example.com", False),
        (OriginPolicy(STOREFRONT), "https://shop.example.com.evil.example", False),
        (OriginPolicy(STOREFRONT), "null", False),
        (OriginPolicy(STOREFRONT, loopback=True), "http://127.0.0.1:8000", False),
        (OriginPolicy(loopback=True), "http://127.0.0.1:8000", True),
        (OriginPolicy(loopback=True), "http://localhost:5173", True),
        (OriginPolicy(loopback=True), "http://[::1]:8000", True),
        (OriginPolicy(loopback=True), "http://127.0.0.1.evil.example", False),
        (OriginPolicy(loopback=True), "https://evil.example", False),
        (OriginPolicy(loopback=True), "null", False),
        (OriginPolicy(), "https://evil.example", False),
        (OriginPolicy(), "http://127.0.0.1:8000", False),
        (OriginPolicy(), None, True),
    ],
)
def test_the_origin_policy(policy: OriginPolicy, origin: str | None, allowed: bool) -> None:
    assert policy.allows(origin) is allowed


async def _sign_in(client: Client) -> None:
    """Leaves ``client`` holding a refresh cookie."""
    user = await client.register()
    r = await client.post(
        "/api/auth/login", json={"email": user["email"], "password": user["password"]}
    )
    assert r.status_code == 200, r.text
    assert refresh_cookie_of(r)


@pytest.mark.parametrize("path", ["/api/auth/refresh", "/api/auth/logout"])
async def test_a_spoofed_host_does_not_make_a_foreign_origin_same_origin(
    start_app: Any, path: str
) -> None:
    """Attacker: a page on evil.example posts with the victim's cookie, through a proxy
    that passes its Host through, so that Origin and Host agree. Defence: Origin is
    checked against BASTION_PUBLIC_ORIGIN, never against Host."""
    app = await start_app(env="production", public_origin=STOREFRONT, **PRODUCTION_SECRETS)
    async with client_for(app) as client:
        await _sign_in(client)
        events = record_events(app)
        r = await client.post(
            path, headers={"Origin": "https://evil.example", "Host": "evil.example"}
        )
        assert_problem(r, 403)
        assert [(e["event"], e["reason"]) for e in events] == [
            ("authz.denied", "cross-origin cookie call")
        ]
        r = await client.post("/api/auth/refresh", headers={"Origin": STOREFRONT})
        assert r.status_code == 200, r.text


async def test_production_starts_without_a_public_origin_and_serves_no_storefront(
    start_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The benchmark and other tooling start production with secrets, limits and URLs
    only: it starts, warns, serves the API but not the storefront, and refuses every
    browser (any Origin) on refresh and logout; API clients send none and go on."""
    with caplog.at_level(logging.WARNING, logger="bastion"):
        app = await start_app(env="production", **PRODUCTION_SECRETS)
    assert "BASTION_PUBLIC_ORIGIN is not set" in caplog.text
    async with client_for(app) as client:
        await _sign_in(client)
        assert_problem(await client.get("/"), 404)
        assert_problem(await client.get("/static/app.js"), 404)
        for origin in ("https://testserver", "http://127.0.0.1:8000"):
            r = await client.post("/api/auth/refresh", headers={"Origin": origin})
            assert_problem(r, 403)
        r = await client.post("/api/auth/refresh")
        assert r.status_code == 200, r.text
        assert refresh_cookie_of(r)


async def test_production_with_a_public_origin_serves_the_storefront(
    start_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bastion"):
        app = await start_app(env="production", public_origin=STOREFRONT, **PRODUCTION_SECRETS)
    assert "BASTION_PUBLIC_ORIGIN" not in caplog.text
    async with client_for(app) as client:
        r = await client.get("/")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")


async def test_development_without_a_public_origin_accepts_loopback_pages_only(
    client: Client,
) -> None:
    user = await client.user()
    assert client.cookies.get(REFRESH_COOKIE)
    r = await client.post("/api/auth/refresh", headers={"Origin": "https://testserver"})
    assert_problem(r, 403)
    r = await client.post("/api/auth/refresh", headers={"Origin": "http://127.0.0.1:8000"})
    assert r.status_code == 200, r.text
    assert user["email"]

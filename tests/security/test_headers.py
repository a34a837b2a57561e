"""Security headers: helmet's defaults plus the guide's CSP and HSTS on every response,
whoever produced it (a route, a 404, the middleware's own 413/415/429, the page, a
static file), with a real nonce that is fresh for every response."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from bastion.security.asgi import Message, Receive, Scope, Send
from bastion.security.headers import (
    DEFAULT_CSP,
    DEFAULT_HEADERS,
    SecurityHeadersConfig,
    SecurityHeadersMiddleware,
)
from tests.conftest import Client, client_for

CONTRACT = {
    "strict-transport-security": "max-age=31536000; includeSubDomains; preload",
    "x-content-type-options": "nosniff",
    "x-frame-options": "SAMEORIGIN",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "origin-agent-cluster": "?1",
    "x-dns-prefetch-control": "off",
    "x-download-options": "noopen",
    "x-permitted-cross-domain-policies": "none",
    "x-xss-protection": "0",
}
CSP = (
    "default-src 'self'; script-src 'self' 'nonce-(?P<nonce>[A-Za-z0-9_-]+)'; "
    "img-src 'self' data: https:; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'self'; object-src 'none'; script-src-attr 'none'"
)
DEV_CSP = re.compile(f"^{CSP}$")
PRODUCTION_CSP = re.compile(f"^{CSP}; upgrade-insecure-requests$")
SCRIPT_NONCE = re.compile(r'<script type="module" src="/static/app.js" nonce="([^"]*)"></script>')


def nonce_of(response: httpx.Response, policy: re.Pattern[str] = DEV_CSP) -> str:
    match = policy.match(response.headers["content-security-policy"])
    assert match, response.headers["content-security-policy"]
    return match.group("nonce")


def assert_contract_headers(response: httpx.Response, policy: re.Pattern[str] = DEV_CSP) -> None:
    for name, value in CONTRACT.items():
        assert response.headers.get_list(name) == [value], name
    assert len(response.headers.get_list("content-security-policy")) == 1
    nonce_of(response, policy)
    assert "server" not in response.headers
    assert "x-powered-by" not in response.headers


async def test_a_429_from_the_rate_limit_middleware_carries_them_too(start_app: Any) -> None:
    app = await start_app(rate_limit_global="1/minute")
    async with client_for(app) as c:
        assert (await c.get("/api/products")).status_code == 200
        limited = await c.get("/api/products")
    assert limited.status_code == 429
    assert_contract_headers(limited)


async def test_production_keeps_upgrade_insecure_requests(start_app: Any) -> None:
    app = await start_app(env="production", access_secret="a" * 40, refresh_secret="b" * 40)
    async with client_for(app) as c:
        for response in (await c.get("/api/products"), await c.get("/")):
            assert_contract_headers(response, PRODUCTION_CSP)


async def test_the_page_script_carries_the_nonce_of_its_own_response(client: Client) -> None:
    for _ in range(3):
        response = await client.get("/")
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["cache-control"] == "no-store"  # a nonce must never be replayed
        assert SCRIPT_NONCE.findall(response.text) == [nonce_of(response)]
        # Nothing on the page runs or styles inline: the policy would block it.
        assert "<style" not in response.text
        assert not re.search(r"\s(on\w+|style)\s*=", response.text)
        assert "<script>" not in response.text


async def test_the_page_script_is_javascript_that_never_writes_html(client: Client) -> None:
    response = await client.get("/static/app.js")
    assert response.headers["content-type"].split(";")[0] in (
        "text/javascript",
        "application/javascript",
    )
    # It builds the DOM from text only, and stores one flag (never a token) anywhere.
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in response.text
    assert response.text.count("Storage.setItem(") == 1
    assert "localStorage.setItem(HINT, " in response.text
    assert "sessionStorage." not in response.text


# --------------------------------------------------------------- the middleware on its own


def app_sending(headers: list[tuple[bytes, bytes]], seen: list[Scope] | None = None) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if seen is not None:
            seen.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def call(middleware: Any, scope_type: str = "http") -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware({"type": scope_type, "path": "/", "headers": []}, receive, send)
    return sent


def headers_of(sent: list[Message]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in sent[0]["headers"]:
        out.setdefault(name.decode().lower(), []).append(value.decode())
    return out


async def test_the_nonce_in_the_scope_is_the_one_in_the_policy() -> None:
    seen: list[Scope] = []
    middleware = SecurityHeadersMiddleware(app_sending([], seen))
    policy = headers_of(await call(middleware))["content-security-policy"][0]
    nonce = seen[0]["bastion.csp_nonce"]
    assert f"'nonce-{nonce}'" in policy
    assert "{nonce}" not in policy


async def test_headers_can_be_overridden_or_removed() -> None:
    config = SecurityHeadersConfig(
        overrides={
            "Referrer-Policy": "strict-origin-when-cross-origin",
            "X-XSS-Protection": None,
            "Permissions-Policy": "camera=()",
            "Content-Security-Policy": "default-src 'none'; script-src 'nonce-{nonce}'",
        }
    )
    headers = headers_of(await call(SecurityHeadersMiddleware(app_sending([]), config)))
    assert headers["referrer-policy"] == ["strict-origin-when-cross-origin"]
    assert "x-xss-protection" not in headers
    assert headers["permissions-policy"] == ["camera=()"]
    assert re.fullmatch(
        r"default-src 'none'; script-src 'nonce-[\w-]{22,}'", headers["content-security-policy"][0]
    )
    assert headers["strict-transport-security"] == [CONTRACT["strict-transport-security"]]


async def test_without_a_nonce_in_any_header_no_nonce_is_made() -> None:
    seen: list[Scope] = []
    config = SecurityHeadersConfig(overrides={"content-security-policy": "default-src 'self'"})
    headers = headers_of(await call(SecurityHeadersMiddleware(app_sending([], seen), config)))
    assert headers["content-security-policy"] == ["default-src 'self'"]
    assert seen[0]["bastion.csp_nonce"] == ""


def test_the_defaults_are_the_contracts() -> None:
    assert {k: v for k, v in DEFAULT_HEADERS.items() if k != "content-security-policy"} == CONTRACT
    assert DEFAULT_HEADERS["content-security-policy"] == DEFAULT_CSP
    assert (
        SecurityHeadersConfig()
        .headers()["content-security-policy"]
        .endswith("; upgrade-insecure-requests")
    )
    relaxed = SecurityHeadersConfig(upgrade_insecure_requests=False).headers()
    assert "upgrade-insecure-requests" not in relaxed["content-security-policy"]
    assert relaxed["content-security-policy"].endswith("script-src-attr 'none'")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"overrides": {"X-Evil": "a\r\nSet-Cookie: x=1"}}, "line break"),
        ({"overrides": {"X-Evil": "a\nb"}}, "line break"),
        ({"overrides": {"X-Evil": "a\x00b"}}, "control character"),
        ({"overrides": {"Bad Name": "x"}}, "not a header name"),
        ({"overrides": {"X-Evil:": "x"}}, "not a header name"),
        ({"overrides": {"Server": "bastion"}}, "names the software"),
        ({"overrides": {"x-powered-by": "bastion"}}, "names the software"),
        ({"nonce_bytes": 8}, "128 bits"),
    ],
)
def test_a_config_that_could_split_or_weaken_headers_is_refused(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SecurityHeadersConfig(**kwargs)


def test_the_config_cannot_be_changed_after_it_is_checked() -> None:
    config = SecurityHeadersConfig(overrides={"X-Test": "1"})
    with pytest.raises(TypeError):
        config.overrides["X-Test"] = "a\r\nb"  # type: ignore[index]


@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
async def test_other_scopes_pass_through_untouched(scope_type: str) -> None:
    seen: list[Scope] = []
    sent = await call(SecurityHeadersMiddleware(app_sending([(b"server", b"x")], seen)), scope_type)
    assert sent[0]["headers"] == [(b"server", b"x")]
    assert "bastion.csp_nonce" not in seen[0]

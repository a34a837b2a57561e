"""The layer knows nothing of Bastion unless told: no ``/api/`` prefix, no exempt
paths, no problem-type URL, no event names, no server's logger names. Each default is
attacked on a bare ASGI app, and the service is shown still passing its own values."""

from __future__ import annotations

import io

import httpx
import pytest

from bastion.api.event_names import EVENT_NAMES, SERVER_LOGGERS
from bastion.security import (
    AllowedHostsConfig,
    AllowedHostsMiddleware,
    ASGIApp,
    BodyLimitConfig,
    BodyLimitMiddleware,
    JsonOnlyMiddleware,
    MemoryStore,
    Rate,
    RateLimitConfig,
    RateLimitMiddleware,
    Receive,
    Scope,
    SecurityEventLog,
    Send,
    logging_config,
    problem_body,
)
from tests.conftest import Client, StartApp, client_for


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hi"})


def client(app: ASGIApp) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_the_global_limit_covers_every_path_by_default() -> None:
    limited = RateLimitMiddleware(hello, RateLimitConfig(Rate(2, 60)), MemoryStore())
    async with client(limited) as c:
        statuses = [(await c.get(p)).status_code for p in ("/x", "/healthz", "/anything")]
    assert statuses == [200, 200, 429]


async def test_json_only_covers_every_path_by_default() -> None:
    async with client(JsonOnlyMiddleware(hello)) as c:
        r = await c.post("/not-api", content=b"a=1", headers={"content-type": "text/plain"})
    assert r.status_code == 415


async def test_no_host_is_exempt_by_default() -> None:
    guarded = AllowedHostsMiddleware(hello, AllowedHostsConfig(("shop.example.com",)))
    async with client(guarded) as c:
        r = await c.get("/healthz", headers={"host": "evil.example"})
    assert r.status_code == 400


async def test_a_problem_names_no_ones_url_unless_given_a_base() -> None:
    async with client(BodyLimitMiddleware(hello, BodyLimitConfig(max_bytes=4))) as c:
        bare = await c.post("/x", content=b"too long")
    assert bare.status_code == 413
    assert bare.json()["type"] == "about:blank"
    mine = BodyLimitMiddleware(hello, BodyLimitConfig(4, problem_base="https://e.example/p/"))
    async with client(mine) as c:
        based = await c.post("/x", content=b"too long")
    assert based.json()["type"] == "https://e.example/p/payload-too-large"
    assert b'"type":"about:blank"' in problem_body(404, "gone")


def test_an_event_log_refuses_a_name_its_caller_did_not_define() -> None:
    stream = io.StringIO()
    log = SecurityEventLog(names=("auth.login.failed",), stream=stream)
    scope = {"type": "http", "path": "/", "headers": [], "client": ("198.51.100.4", 1)}
    log.emit("auth.login.failed", scope)
    with pytest.raises(ValueError, match=r"auth\.login\.faild"):
        log.emit("auth.login.faild", scope)
    assert len(stream.getvalue().splitlines()) == 1
    SecurityEventLog(stream=stream).emit("anything.at.all", scope)  # no list: any name


def test_logging_config_names_no_server_unless_told() -> None:
    assert logging_config()["loggers"] == {}
    assert set(logging_config(loggers=SERVER_LOGGERS)["loggers"]) == set(SERVER_LOGGERS)


async def test_the_service_passes_its_own_values(start_app: StartApp) -> None:
    app = await start_app()
    assert app.services.events.names == frozenset(EVENT_NAMES)
    c: Client = client_for(app, "127.0.0.1")
    try:
        big = await c.post("/api/orders", content=b"x" * 20000)
        form = await c.post(
            "/api/auth/login", content=b"a=1", headers={"content-type": "text/plain"}
        )
        elsewhere = await c.post(
            "/favicon.ico", content=b"a=1", headers={"content-type": "text/plain"}
        )
    finally:
        await c.aclose()
    assert big.json()["type"] == "https://bastion.dev/problems/payload-too-large"
    assert form.json()["type"] == "https://bastion.dev/problems/unsupported-media-type"
    assert elsewhere.status_code != 415  # JSON-only stays under /api/ in the service

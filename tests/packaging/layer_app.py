"""Run by tests/packaging/test_wheel.py inside a clean virtualenv that holds the wheel
(core only), Starlette and httpx: nothing of the service may be importable there, and a
Starlette app built on the layer must defend itself. Exits non-zero on any failure."""

from __future__ import annotations

import asyncio
import importlib.util

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bastion.security import *  # noqa: F403  (the star import must work without redis)
from bastion.security import (
    BodyLimitConfig,
    BodyLimitMiddleware,
    MemoryStore,
    Rate,
    RateLimitConfig,
    RateLimitMiddleware,
    SecurityHeadersMiddleware,
    csp_nonce,
)

SERVICE_ONLY = (
    "fastapi",
    "strawberry",
    "asyncpg",
    "aiosqlite",
    "redis",
    "typer",
    "rich",
    "pydantic",
    "pydantic_settings",
    "prometheus_client",
    "uvicorn",
)


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"bytes": len(body), "nonce": csp_nonce(request.scope)})


async def main() -> None:
    present = [name for name in SERVICE_ONLY if importlib.util.find_spec(name) is not None]
    assert not present, f"the core install pulled in: {present}"
    app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    limited = RateLimitMiddleware(
        BodyLimitMiddleware(app, BodyLimitConfig(max_bytes=64)),
        RateLimitConfig(rate=Rate(3, 60), prefix="/"),
        MemoryStore(),
    )
    transport = httpx.ASGITransport(app=SecurityHeadersMiddleware(limited))
    async with httpx.AsyncClient(transport=transport, base_url="http://layer.test") as client:
        ok = await client.post("/echo", content=b"{}")
        assert ok.status_code == 200, ok.text
        nonce = ok.json()["nonce"]
        assert nonce
        assert f"'nonce-{nonce}'" in ok.headers["content-security-policy"]
        assert ok.headers["x-content-type-options"] == "nosniff"
        assert ok.headers["strict-transport-security"].startswith("max-age=")
        assert ok.headers["ratelimit-policy"] == '"global";q=3;w=60'
        big = await client.post("/echo", content=b"x" * 65)
        assert big.status_code == 413, big.text
        assert big.headers["x-frame-options"] == "SAMEORIGIN"
        assert (await client.post("/echo", content=b"{}")).status_code == 200
        refused = await client.post("/echo", content=b"{}")
        assert refused.status_code == 429, refused.text
        assert refused.headers["ratelimit"].startswith('"global";r=0;t=')
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["content-type"] == "application/problem+json"
    print("layer ok")


asyncio.run(main())

"""The example apps (``examples/``), each over the in-process store with in-memory
sessions and over Redis with sessions in SQLite, served in-process through httpx."""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import redis
from asgi_lifespan import LifespanManager

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
APPS = ("starlette_app", "fastapi_app", "litestar_app")
PASSWORD = "Correct-Horse-Battery-42"

MakeClient = Callable[..., Awaitable[httpx.AsyncClient]]


def _example(name: str) -> ModuleType:
    # The examples import their shared ``accounts`` module as a top-level one, as they
    # do when uvicorn runs them with --app-dir examples.
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module(name)


@pytest.fixture(params=APPS)
def example(request: pytest.FixtureRequest) -> ModuleType:
    return _example(request.param)


@pytest.fixture(params=["memory", pytest.param("redis+sqlite", marks=pytest.mark.redis)])
def backends(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str | None]:
    """``store_url`` and ``sessions_url`` for the app's settings (an empty Redis db)."""
    if request.param == "memory":
        return {"store_url": None, "sessions_url": None}
    url: str = request.getfixturevalue("shared_redis_url")
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return {"store_url": url, "sessions_url": f"sqlite:///{tmp_path / 'sessions.db'}"}


def _state_per_request(app: Any) -> Any:
    """Give each request a shallow copy of the lifespan state, as ASGI servers do
    (uvicorn too); asgi-lifespan hands every request the same dict, where Litestar would
    find the previous request's connection state."""

    async def copying(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan" and "state" in scope:
            scope["state"] = dict(scope["state"])
        await app(scope, receive, send)

    return copying


@pytest.fixture
async def make_client(
    example: ModuleType, backends: dict[str, str | None]
) -> AsyncIterator[MakeClient]:
    """``await make_client(global_rate=Rate(5, 60), ...)``: a client of the example app
    built with those settings (cheap Argon2, unlimited otherwise unless given)."""
    accounts = _example("accounts")
    from bastion.security import HasherConfig, Rate

    async with AsyncExitStack() as stack:

        async def make(**overrides: Any) -> httpx.AsyncClient:
            settings = replace(
                accounts.Settings(),
                hasher=HasherConfig(memory_kib=1024, time_cost=1, queue=64),
                global_rate=Rate(1_000_000, 3600),
                login_per_ip=Rate(1_000_000, 3600),
                login_per_account=Rate(1_000_000, 3600),
                **backends,
            )
            app = example.create_app(replace(settings, **overrides))
            manager = await stack.enter_async_context(LifespanManager(_state_per_request(app)))
            transport = httpx.ASGITransport(app=manager.app)
            return await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://example.test")
            )

        yield make


async def register(client: httpx.AsyncClient, email: str = "ada@example.com") -> None:
    answer = await client.post("/auth/register", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 201, answer.text


async def login(client: httpx.AsyncClient, email: str = "ada@example.com") -> dict[str, Any]:
    answer = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"authorization": f"Bearer {tokens['access_token']}"}

"""Cached catalogue pages served in front of FastAPI: the same answer as the route,
for exactly the queries the route validated, and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.api.page_cache import CachedPages, PageCache, page_key
from bastion.security.asgi import Message
from tests.conftest import Client


@pytest.mark.parametrize(
    ("query", "key"),
    [
        (b"", (None, 20)),
        (b"limit=5", (None, 5)),
        (b"limit=100", (None, 100)),
        (b"cursor=abc&limit=7", ("abc", 7)),
        (b"cursor=", ("", 20)),
    ],
)
def test_plain_queries_have_a_key(query: bytes, key: tuple[str | None, int]) -> None:
    assert page_key(query) == key


@pytest.mark.parametrize(
    "query",
    [b"limit=020", b"limit=2_0", b"limit=+5", b"limit=0", b"limit= 5", b"limit=1000",
     b"limit=5&limit=6", b"cursor=a&cursor=b", b"limit=5&extra=1", b"LIMIT=5"],
)  # fmt: skip
def test_anything_else_takes_the_full_route(query: bytes) -> None:
    assert page_key(query) is None


async def test_only_a_cached_get_of_the_path_is_answered_in_front() -> None:
    cache = PageCache()
    cache.put((None, 20), b'{"items":[]}')
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(f"{scope['method']} {scope['path']}?{scope['query_string'].decode()}")

    fast = CachedPages(app, cache, "/api/products")
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    def scope(method: str, path: str, query: bytes) -> dict[str, Any]:
        return {"type": "http", "method": method, "path": path, "query_string": query}

    await fast(scope("GET", "/api/products", b""), None, send)  # type: ignore[arg-type]
    assert reached == []
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b'{"items":[]}'
    for method, path, query in [
        ("POST", "/api/products", b""),
        ("GET", "/api/products/x", b""),
        ("GET", "/api/products", b"limit=5"),  # not cached
        ("GET", "/api/products", b"limit=020"),
    ]:
        await fast(scope(method, path, query), None, send)  # type: ignore[arg-type]
    assert len(reached) == 4


async def test_a_page_served_from_the_cache_is_the_page_the_route_served(client: Client) -> None:
    first = await client.get("/api/products?limit=3")
    again = await client.get("/api/products?limit=3")
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    for name in ("content-type", "content-length", "content-security-policy", "ratelimit"):
        assert name in again.headers
        if name not in ("ratelimit", "content-security-policy"):
            assert again.headers[name] == first.headers[name]
    # A query the route refuses is still refused, cached pages or not.
    assert (await client.get("/api/products?limit=0")).status_code == 400
    assert (await client.get("/api/products?limit=020")).status_code == 200  # by the route

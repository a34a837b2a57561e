"""A small, short-lived cache of rendered public pages.

Catalogue pages are the same for every caller and change rarely (only ``seed-demo`` and
migrations write products), so a burst of anonymous reads costs one query a second
instead of one a request, on each instance.
"""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qsl

from bastion.api.pagination import DEFAULT_LIMIT
from bastion.security import ASGIApp, Receive, Scope, Send

__all__ = ["CachedPages", "PageCache", "page_key"]

CACHE_SECONDS = 1.0
CACHE_ENTRIES = 256  # cursors come from clients: the cache must stay small whatever they send


class PageCache:
    """Rendered pages by (cursor, limit), each kept ``ttl`` seconds."""

    __slots__ = ("_entries", "ttl")

    def __init__(self, ttl: float = CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str | None, int], tuple[float, bytes]] = {}

    def get(self, key: tuple[str | None, int]) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: tuple[str | None, int], body: bytes) -> None:
        if len(self._entries) >= CACHE_ENTRIES:
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
            if len(self._entries) >= CACHE_ENTRIES:
                self._entries.clear()
        self._entries[key] = (time.monotonic() + self.ttl, body)


_LIMIT = re.compile(r"[1-9][0-9]{0,2}")


def page_key(query_string: bytes) -> tuple[str | None, int] | None:
    """The cache key of a catalogue query string, or ``None`` when it is anything but
    ``limit`` (in canonical digits) and ``cursor``, each at most once: those requests
    take the full route, which validates them."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    params = dict(pairs)
    if len(params) != len(pairs) or not params.keys() <= {"limit", "cursor"}:
        return None
    limit = params.get("limit")
    if limit is not None and not _LIMIT.fullmatch(limit):
        return None
    return params.get("cursor"), int(limit) if limit is not None else DEFAULT_LIMIT


class CachedPages:
    """Serves ``GET path`` straight from a :class:`PageCache`, in front of the framework.

    Only pages the route itself rendered are in the cache, and a key is only ever put
    there after the route validated its query, so a hit answers exactly what the route
    would, without its routing, dependency and validation layers (most of the cost of a
    cached page). Everything else, misses included, goes to the app."""

    def __init__(self, app: ASGIApp, cache: PageCache, path: str) -> None:
        self.app = app
        self.cache = cache
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == self.path:
            key = page_key(scope["query_string"])
            body = self.cache.get(key) if key is not None else None
            if body is not None:
                headers = [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json"),
                ]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

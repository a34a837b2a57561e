"""A small, short-lived cache of rendered public pages.

Catalogue pages are the same for every caller and change rarely (only ``seed-demo`` and
migrations write products), so a burst of anonymous reads costs one query a second
instead of one a request, on each instance.
"""

from __future__ import annotations

import time

__all__ = ["PageCache"]

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

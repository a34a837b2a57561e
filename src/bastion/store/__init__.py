"""Counters and flags for the security layer: one protocol, an in-process and a Redis backend.

Every operation is atomic on its own: a Lua script on Redis, and no ``await`` inside the
critical section in memory. Nothing here ever reads a value and writes it back in two
steps.
"""

from bastion.store.base import Budget, Hit, Store, StoreUnavailable
from bastion.store.memory import MemoryStore

__all__ = ["Budget", "Hit", "MemoryStore", "Store", "StoreUnavailable", "open_store"]


def open_store(url: str | None) -> Store:
    """The in-process store for ``None``, else the Redis store for a ``redis://`` URL
    (one server) or a ``redis+cluster://`` URL (a Redis Cluster)."""
    if not url:
        return MemoryStore()
    from bastion.store.redis import RedisStore

    return RedisStore.from_url(url)

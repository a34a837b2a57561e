"""The Redis store: exact across every worker and instance that shares one Redis.

Each operation is one Lua script (atomic on the server) sent in one round trip. The
script reads the clock with ``TIME`` so that every instance agrees on when a window
ends. Every key is wrapped in a hash tag (``bastion:{...}``), so each script touches a
single Redis Cluster slot.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bastion.store.base import Hit, StoreUnavailable

__all__ = ["RedisStore"]

# KEYS[1] window hash {n, e}; ARGV limit, window ms. Returns {allowed, n, ms left, e}.
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'n', 'e')
local n = tonumber(v[1]) or 0
local e = tonumber(v[2]) or 0
if e <= now then
  n = 0
  e = now + tonumber(ARGV[2])
end
local allowed = 0
if n < limit then
  n = n + 1
  allowed = 1
  redis.call('HSET', KEYS[1], 'n', n, 'e', e)
  redis.call('PEXPIREAT', KEYS[1], e)
end
return {allowed, n, e - now, e}
"""

_PEEK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 'n', 'e')
local e = tonumber(v[2]) or 0
if e <= now then return {0, 0, 0} end
return {tonumber(v[1]) or 0, e - now, e}
"""

# Gives a slot back only to the window it was taken from.
_RELEASE = """
local v = redis.call('HMGET', KEYS[1], 'n', 'e')
if v[2] == ARGV[1] and tonumber(v[1]) > 0 then
  redis.call('HINCRBY', KEYS[1], 'n', -1)
end
return 0
"""


def _key(name: str) -> str:
    return f"bastion:{{{name}}}"


class RedisStore:
    __slots__ = ("_hit", "_peek", "_redis", "_release")

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._hit = client.register_script(_HIT)
        self._peek = client.register_script(_PEEK)
        self._release = client.register_script(_RELEASE)

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        client = aioredis.Redis.from_url(
            url,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            health_check_interval=0,
            max_connections=256,
        )
        return cls(client)

    async def hit(
        self, key: str, *, limit: int, window: float, check_flag: str | None = None
    ) -> Hit:
        try:
            if check_flag is None:
                res: Any = await self._hit(keys=[_key(key)], args=[limit, int(window * 1000)])
                flagged = False
            else:
                async with self._redis.pipeline(transaction=False) as pipe:
                    await self._hit(keys=[_key(key)], args=[limit, int(window * 1000)], client=pipe)
                    pipe.exists(_key(check_flag))
                    res, exists = await pipe.execute()
                flagged = bool(exists)
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        allowed, count, left_ms, ends = (int(x) for x in res)
        return Hit(
            allowed=bool(allowed),
            count=count,
            limit=limit,
            reset_after=left_ms / 1000,
            window=ends,
            flagged=flagged,
        )

    async def peek(self, key: str, *, limit: int) -> Hit:
        try:
            count, left_ms, ends = (int(x) for x in await self._peek(keys=[_key(key)]))
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return Hit(
            allowed=count < limit, count=count, limit=limit, reset_after=left_ms / 1000, window=ends
        )

    async def release(self, key: str, *, window: int) -> None:
        try:
            await self._release(keys=[_key(key)], args=[str(window)])
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def reset(self, key: str) -> None:
        try:
            await self._redis.delete(_key(key))
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def set_flag(self, key: str, *, ttl: float) -> None:
        try:
            await self._redis.set(_key(key), b"1", px=max(1, int(ttl * 1000)))
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def has_flag(self, key: str) -> bool:
        try:
            return bool(await self._redis.exists(_key(key)))
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def aclose(self) -> None:
        await self._redis.aclose()

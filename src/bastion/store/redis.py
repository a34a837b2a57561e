"""The Redis store: exact across every worker and instance that shares one Redis.

Each operation is one Lua script (atomic on the server) sent in one round trip; the
global limit's hit and its revocation-flag lookup share one pipelined round trip. The
scripts read the clock with ``TIME``, so that every instance agrees on when a window
ends. Every key is ``bastion:{name}``: a hash tag, so each key has a Redis Cluster slot
of its own, unless the name starts with its own tag (``{auth}ip:...`` becomes
``bastion:{auth}ip:...``), which multi-key scripts need.

Failing fast: short socket timeouts, one immediate retry on a broken connection (a pool
left over from before a Redis restart), and a circuit breaker: after a connection
failure, operations raise :class:`StoreUnavailable` at once for ``cooldown`` seconds,
then a single probe decides whether the store is back.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bastion.store.base import Budget, Hit, StoreUnavailable

__all__ = ["RedisStore"]

T = TypeVar("T")

# KEYS: one window hash {n, e} per budget; ARGV: limit, window ms, for each budget.
# Takes a slot from every budget or from none. Returns {ok, n1, ms left1, e1, n2, ...}.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ok = 1
local n, e = {}, {}
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'n', 'e')
  n[i] = tonumber(v[1]) or 0
  e[i] = tonumber(v[2]) or 0
  if e[i] <= now then
    n[i] = 0
    e[i] = now + tonumber(ARGV[2 * i])
  end
  if n[i] >= tonumber(ARGV[2 * i - 1]) then ok = 0 end
end
local out = {ok}
for i = 1, #KEYS do
  if ok == 1 then
    n[i] = n[i] + 1
    redis.call('HSET', KEYS[i], 'n', n[i], 'e', e[i])
    redis.call('PEXPIREAT', KEYS[i], e[i])
  end
  out[#out + 1] = n[i]
  out[#out + 1] = e[i] - now
  out[#out + 1] = e[i]
end
return out
"""

# KEYS[1..r]: windows to give one slot back to, ARGV[1] = r, ARGV[1 + i]: the window
# (its end) each slot was taken from; a slot never goes back to a later window.
# KEYS[r + 1..]: windows to forget.
_GIVE_BACK = """
local r = tonumber(ARGV[1])
for i = 1, r do
  local v = redis.call('HMGET', KEYS[i], 'n', 'e')
  if v[2] and tonumber(v[2]) == tonumber(ARGV[i + 1]) and (tonumber(v[1]) or 0) > 0 then
    redis.call('HINCRBY', KEYS[i], 'n', -1)
  end
end
for i = r + 1, #KEYS do
  redis.call('DEL', KEYS[i])
end
return 0
"""

_PEEK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 'n', 'e')
local e = tonumber(v[2]) or 0
if e <= now then return {0, 0, 0} end
return {tonumber(v[1]) or 0, e - now, e}
"""


# KEYS[1]: the flag; ARGV[1]: its lifetime in ms. Raising a flag again never shortens
# it: the later expiry wins (PTTL is -2 for no key, -1 for a flag that never expires).
_SET_FLAG = """
local left = redis.call('PTTL', KEYS[1])
if left == -1 or left >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
return 1
"""


def _key(name: str) -> str:
    if name.startswith("{") and name.find("}") > 1:
        return f"bastion:{name}"
    return f"bastion:{{{name}}}"


def _hits(res: Sequence[Any], budgets: Sequence[Budget]) -> list[Hit]:
    values = [int(x) for x in res]
    out = []
    for i, budget in enumerate(budgets):
        count, left_ms, ends = values[1 + 3 * i : 4 + 3 * i]
        out.append(
            Hit(
                # A refused take reports, per budget, whether that budget had room.
                allowed=bool(values[0]) or count < budget.limit,
                count=count,
                limit=budget.limit,
                reset_after=left_ms / 1000,
                window=ends,
            )
        )
    return out


class RedisStore:
    __slots__ = (
        "_clock",
        "_cooldown",
        "_give_back",
        "_open_until",
        "_peek",
        "_probing",
        "_redis",
        "_set_flag",
        "_take",
    )

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        cooldown: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = client
        self._take = client.register_script(_TAKE)
        self._give_back = client.register_script(_GIVE_BACK)
        self._peek = client.register_script(_PEEK)
        self._set_flag = client.register_script(_SET_FLAG)
        self._cooldown = cooldown
        self._clock = clock
        self._open_until = 0.0
        self._probing = False

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 1.0, cooldown: float = 1.0) -> RedisStore:
        """A store on ``url``. Every command gives up after ``timeout`` seconds; a broken
        pooled connection is retried once, on a fresh connection, and nothing else is."""
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=512,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
        )
        return cls(aioredis.Redis.from_pool(pool), cooldown=cooldown)

    @property
    def circuit_open(self) -> bool:
        """Whether the circuit is not closed: from a connection failure until an
        operation succeeds again (operations fail at once, then a probe goes out)."""
        return self._open_until != 0.0

    async def _call(self, op: Callable[[], Awaitable[T]]) -> T:
        now = self._clock()
        probe = False
        if now < self._open_until or (self._open_until and self._probing):
            raise StoreUnavailable("store unreachable; retrying shortly")
        if self._open_until:
            self._probing = probe = True
        try:
            result = await op()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            self._open_until = self._clock() + self._cooldown
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except RedisError as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        finally:
            if probe:
                self._probing = False
        self._open_until = 0.0
        return result

    async def _run_take(self, budgets: Sequence[Budget]) -> Any:
        args: list[int] = []
        for b in budgets:
            args += [b.limit, max(1, int(b.window * 1000))]
        return await self._take(keys=[_key(b.key) for b in budgets], args=args)

    async def hit(
        self, key: str, *, limit: int, window: float, check_flag: str | None = None
    ) -> Hit:
        budgets = [Budget(key, limit, window)]
        if check_flag is None:
            res = await self._call(lambda: self._run_take(budgets))
            return _hits(res, budgets)[0]
        res, exists = await self._call(lambda: self._take_and_exists(budgets, check_flag))
        hit = _hits(res, budgets)[0]
        return Hit(hit.allowed, hit.count, hit.limit, hit.reset_after, hit.window, bool(exists))

    async def _take_and_exists(self, budgets: Sequence[Budget], flag: str) -> tuple[Any, Any]:
        # A pipeline of EVALSHA + EXISTS: one round trip (redis-py's Script objects would
        # add a SCRIPT EXISTS round trip to every pipeline).
        args: list[Any] = [_key(b.key) for b in budgets]
        for b in budgets:
            args += [b.limit, max(1, int(b.window * 1000))]
        for attempt in (1, 2):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.evalsha(self._take.sha, len(budgets), *args)
                pipe.exists(_key(flag))
                res, exists = await pipe.execute(raise_on_error=False)
            if isinstance(res, NoScriptError) and attempt == 1:
                await self._redis.script_load(_TAKE)  # Redis restarted: cache is empty
                continue
            for value in (res, exists):
                if isinstance(value, Exception):
                    raise value
            break
        return res, exists

    async def take(self, budgets: Sequence[Budget]) -> list[Hit]:
        if not budgets:
            return []
        return _hits(await self._call(lambda: self._run_take(budgets)), budgets)

    async def give_back(
        self, *, release: Sequence[tuple[str, int]] = (), reset: Sequence[str] = ()
    ) -> None:
        if not release and not reset:
            return
        keys = [_key(k) for k, _ in release] + [_key(k) for k in reset]
        args = [len(release), *(w for _, w in release)]
        await self._call(lambda: self._give_back(keys=keys, args=args))

    async def peek(self, key: str, *, limit: int) -> Hit:
        res = await self._call(lambda: self._peek(keys=[_key(key)]))
        count, left_ms, ends = (int(x) for x in res)
        return Hit(
            allowed=count < limit, count=count, limit=limit, reset_after=left_ms / 1000, window=ends
        )

    async def release(self, key: str, *, window: int) -> None:
        await self.give_back(release=[(key, window)])

    async def reset(self, key: str) -> None:
        await self.give_back(reset=[key])

    async def set_flag(self, key: str, *, ttl: float) -> None:
        ms = max(1, int(ttl * 1000))
        await self._call(lambda: self._set_flag(keys=[_key(key)], args=[ms]))

    async def has_flag(self, key: str) -> bool:
        return bool(await self._call(lambda: self._redis.exists(_key(key))))

    async def ping(self) -> None:
        await self._call(self._redis.ping)

    async def aclose(self) -> None:
        await self._redis.aclose()

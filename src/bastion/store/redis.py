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

On a Redis Cluster (see :mod:`bastion.store.cluster`) the same holds per node: every
script's keys share one slot, so each script runs on the one master that owns it (sent
straight to it: :func:`~bastion.store.cluster.execute`; the limit's hit and the flag's
lookup in one pipeline when one master owns both, else at once to their two); a script
the node does not have (NOSCRIPT: a restarted or newly promoted master) is sent again
as EVAL to that same node; and the breaker is kept per node, so a dead master makes
only its own slots fail fast.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ClusterDownError, NoScriptError, RedisClusterException, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bastion.store.base import Budget, Hit, StoreUnavailable
from bastion.store.cluster import Command, execute, open_cluster
from bastion.store.urls import is_cluster_url

__all__ = ["RedisStore"]

T = TypeVar("T")

# The store cannot answer for a while: open the breaker. A cluster without a master for
# a slot (CLUSTERDOWN), or that the client cannot map (RedisClusterException: no startup
# node reachable, a slot its map lacks), is down for that slot as a dead server is.
_OUTAGES = (RedisConnectionError, RedisTimeoutError, ClusterDownError, RedisClusterException)

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


class _Script:
    """A Lua script and its SHA1 (the name Redis caches it under; not a security use)."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


_TAKE_SCRIPT, _GIVE_BACK_SCRIPT, _PEEK_SCRIPT = _Script(_TAKE), _Script(_GIVE_BACK), _Script(_PEEK)
_SET_FLAG_SCRIPT = _Script(_SET_FLAG)
_ALL = (_TAKE_SCRIPT, _GIVE_BACK_SCRIPT, _PEEK_SCRIPT, _SET_FLAG_SCRIPT)
_SOURCES = {s.sha: s.source for s in _ALL}  # to send as EVAL what NOSCRIPT refused


class _Breaker:
    """Open until ``open_until`` (a clock reading); then one probe at a time."""

    __slots__ = ("open_until", "probing")

    def __init__(self) -> None:
        self.open_until = 0.0
        self.probing = False


def _key(name: str) -> str:
    if name.startswith("{") and name.find("}") > 1:
        return f"bastion:{name}"
    return f"bastion:{{{name}}}"


def _take_args(budgets: Sequence[Budget]) -> list[int]:
    args: list[int] = []
    for b in budgets:
        args += [b.limit, max(1, int(b.window * 1000))]
    return args


def _evalsha(script: _Script, keys: Sequence[str], args: Sequence[Any]) -> tuple[Any, ...]:
    return ("EVALSHA", script.sha, len(keys), *keys, *args)


def _eval(evalsha: tuple[Any, ...]) -> tuple[Any, ...]:
    return ("EVAL", _SOURCES[evalsha[1]], *evalsha[2:])


async def _on_cluster(cluster: RedisCluster, commands: list[Command]) -> list[Any]:
    """The commands on their slots' masters; a script a master lacks sent again as EVAL
    to it; a command's own error raised."""
    results = await execute(cluster, commands)
    missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
    if missing:
        again = [(commands[i][0], _eval(commands[i][1])) for i in missing]
        for i, res in zip(missing, await execute(cluster, again), strict=True):
            results[i] = res
    for res in results:
        if isinstance(res, Exception):
            raise res
    return results


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
    """The store on one Redis server or on a Redis Cluster (``client`` is either)."""

    __slots__ = ("_breakers", "_clock", "_cluster", "_cooldown", "_mapped", "_redis")

    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        *,
        cooldown: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = client
        self._cluster = client if isinstance(client, RedisCluster) else None
        self._mapped = self._cluster is None
        self._cooldown = cooldown
        self._clock = clock
        self._breakers: dict[str, _Breaker] = {}

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 1.0, cooldown: float = 1.0) -> RedisStore:
        """A store on ``url`` (a ``redis+cluster://`` URL for a cluster). Every command
        gives up after ``timeout`` seconds; a broken pooled connection is retried once,
        on a fresh connection (on a cluster: after refreshing the slot map), and
        nothing else is."""
        if is_cluster_url(url):
            return cls(open_cluster(url, timeout=timeout), cooldown=cooldown)
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
        """Whether a circuit is not closed (on a cluster, any node's): from a connection
        failure until an operation succeeds again (operations fail at once, then a probe
        goes out)."""
        return any(b.open_until != 0.0 for b in self._breakers.values())

    @property
    def client(self) -> aioredis.Redis | RedisCluster:
        """The redis-py client underneath (``bastion check`` asks it about each node)."""
        return self._redis

    def _node_of(self, key: str) -> str:
        """The name of the node that owns ``key`` ("" on one server, or before a cluster
        client has learnt the slot map): the breaker to use for it."""
        if self._cluster is None:
            return ""
        try:
            slot = self._cluster.keyslot(key)
            return str(self._cluster.nodes_manager.get_node_from_slot(slot).name)
        except (RedisError, RedisClusterException, KeyError):
            return ""

    async def _call(self, op: Callable[[], Awaitable[T]], keys: Sequence[str] = ()) -> T:
        now = self._clock()
        nodes = {self._node_of(k) for k in keys} or {""}
        breakers = [self._breakers.setdefault(n, _Breaker()) for n in nodes]
        if any(now < b.open_until or (b.open_until and b.probing) for b in breakers):
            raise StoreUnavailable("store unreachable; retrying shortly")
        probes = [b for b in breakers if b.open_until]
        for b in probes:
            b.probing = True
        try:
            if self._cluster is not None and not self._mapped:
                # Learn the slot map before the first command: redis-py routes a command
                # sent before its client is initialized to a random node (MOVED), and a
                # burst of those made it close every connection in use.
                await self._cluster.initialize()
                self._mapped = True
            result = await op()
        except _OUTAGES as exc:
            for b in breakers:
                b.open_until = self._clock() + self._cooldown
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except RedisError as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        finally:
            for b in probes:
                b.probing = False
        for b in breakers:
            b.open_until = 0.0
        return result

    async def _script(self, script: _Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA; on NOSCRIPT (a restarted or newly promoted server, a flushed cache),
        EVAL on the same server, which also caches the script there for next time."""
        if self._cluster is not None:
            command = (keys[0], _evalsha(script, keys, args))
            return (await _on_cluster(self._cluster, [command]))[0]
        try:
            return await self._redis.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self._redis.eval(script.source, len(keys), *keys, *args)

    async def _run_take(self, budgets: Sequence[Budget]) -> Any:
        return await self._script(_TAKE_SCRIPT, [_key(b.key) for b in budgets], _take_args(budgets))

    async def hit(
        self, key: str, *, limit: int, window: float, check_flag: str | None = None
    ) -> Hit:
        budgets = [Budget(key, limit, window)]
        keys = [_key(key)]
        if check_flag is None:
            res = await self._call(lambda: self._run_take(budgets), keys)
            return _hits(res, budgets)[0]
        keys.append(_key(check_flag))
        res, exists = await self._call(lambda: self._take_and_exists(budgets, check_flag), keys)
        hit = _hits(res, budgets)[0]
        return Hit(hit.allowed, hit.count, hit.limit, hit.reset_after, hit.window, bool(exists))

    async def _take_and_exists(self, budgets: Sequence[Budget], flag: str) -> tuple[Any, Any]:
        cluster = self._cluster
        if cluster is None:
            return await self._pipelined(budgets, flag)
        # Two slots: one pipeline when one master owns both, else one command to each.
        keys = [_key(b.key) for b in budgets]
        name = _key(flag)
        take = (keys[0], _evalsha(_TAKE_SCRIPT, keys, _take_args(budgets)))
        res, exists = await _on_cluster(cluster, [take, (name, ("EXISTS", name))])
        return res, exists

    async def _pipelined(self, budgets: Sequence[Budget], flag: str) -> tuple[Any, Any]:
        # One server: a pipeline of EVALSHA + EXISTS, one round trip (redis-py's Script
        # objects would add a SCRIPT EXISTS round trip to every pipeline).
        args: list[Any] = [*(_key(b.key) for b in budgets), *_take_args(budgets)]
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.evalsha(_TAKE_SCRIPT.sha, len(budgets), *args)
            pipe.exists(_key(flag))
            res, exists = await pipe.execute(raise_on_error=False)
        if isinstance(res, NoScriptError):  # Redis restarted: its script cache is empty
            res = await self._redis.eval(_TAKE_SCRIPT.source, len(budgets), *args)
        return res, exists

    async def take(self, budgets: Sequence[Budget]) -> list[Hit]:
        if not budgets:
            return []
        keys = [_key(b.key) for b in budgets]
        return _hits(await self._call(lambda: self._run_take(budgets), keys), budgets)

    async def give_back(
        self, *, release: Sequence[tuple[str, int]] = (), reset: Sequence[str] = ()
    ) -> None:
        if not release and not reset:
            return
        keys = [_key(k) for k, _ in release] + [_key(k) for k in reset]
        args = [len(release), *(w for _, w in release)]
        await self._call(lambda: self._script(_GIVE_BACK_SCRIPT, keys, args), keys)

    async def peek(self, key: str, *, limit: int) -> Hit:
        keys = [_key(key)]
        res = await self._call(lambda: self._script(_PEEK_SCRIPT, keys, ()), keys)
        count, left_ms, ends = (int(x) for x in res)
        return Hit(
            allowed=count < limit, count=count, limit=limit, reset_after=left_ms / 1000, window=ends
        )

    async def release(self, key: str, *, window: int) -> None:
        await self.give_back(release=[(key, window)])

    async def reset(self, key: str) -> None:
        await self.give_back(reset=[key])

    async def set_flag(self, key: str, *, ttl: float) -> None:
        name = _key(key)
        ms = max(1, int(ttl * 1000))
        await self._call(lambda: self._script(_SET_FLAG_SCRIPT, [name], [ms]), [name])

    async def has_flag(self, key: str) -> bool:
        name = _key(key)
        cluster = self._cluster
        if cluster is not None:
            cmd = (name, ("EXISTS", name))
            return bool((await self._call(lambda: _on_cluster(cluster, [cmd]), [name]))[0])
        return bool(await self._call(lambda: self._redis.exists(name), [name]))

    async def ping(self) -> None:
        """One server: PING. A cluster: CLUSTER INFO from one node must say
        ``cluster_state:ok`` (every slot has a master that answers)."""
        cluster = self._cluster
        if cluster is None:
            await self._call(self._redis.ping)
            return

        async def cluster_ok() -> None:
            info = await cluster.cluster_info(target_nodes=RedisCluster.DEFAULT_NODE)
            if info.get("cluster_state") != "ok":
                raise ClusterDownError(f"cluster_state:{info.get('cluster_state')}")

        await self._call(cluster_ok)

    async def aclose(self) -> None:
        await self._redis.aclose()

"""The store protocol, attacked on every backend (memory, one Redis, a Redis Cluster): exact
budgets under concurrency, all-or-nothing takes, slots never credited to a later window,
expiring flags."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from bastion.security.guard import AttemptGuard, GuardConfig
from bastion.security.limits import Rate
from bastion.store import Budget, MemoryStore, Store, StoreUnavailable
from bastion.store.redis import RedisStore
from tests.conftest import flush_redis
from tests.servers import RedisServer, free_port


@pytest.fixture(params=["memory", "redis", "cluster"])
async def store(request: pytest.FixtureRequest, shared_redis_url: str) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    url = shared_redis_url
    if request.param == "cluster":
        url = request.getfixturevalue("shared_cluster_url")
    await flush_redis(url)
    redis_store = RedisStore.from_url(url)
    yield redis_store
    await redis_store.aclose()


async def test_fifty_concurrent_hits_take_exactly_the_limit(store: Store) -> None:
    hits = await asyncio.gather(*(store.hit("k", limit=10, window=60) for _ in range(50)))
    assert sum(h.allowed for h in hits) == 10
    assert sorted(h.count for h in hits if h.allowed) == list(range(1, 11))
    assert all(h.count == 10 and h.remaining == 0 for h in hits if not h.allowed)


async def test_a_refused_hit_takes_nothing_and_says_when_the_window_frees(store: Store) -> None:
    for _ in range(3):
        await store.hit("k", limit=3, window=60)
    refused = await store.hit("k", limit=3, window=60)
    assert not refused.allowed
    assert 59 < refused.reset_after <= 60
    assert (await store.peek("k", limit=3)).count == 3


async def test_a_budget_frees_when_its_window_ends(store: Store) -> None:
    assert (await store.hit("k", limit=1, window=0.2)).allowed
    assert not (await store.hit("k", limit=1, window=0.2)).allowed
    await asyncio.sleep(0.25)
    fresh = await store.hit("k", limit=1, window=0.2)
    assert fresh.allowed
    assert fresh.count == 1


async def test_take_is_all_or_nothing(store: Store) -> None:
    small, large = Budget("{t}small", 1, 60), Budget("{t}large", 5, 60)
    assert all(h.allowed for h in await store.take([small, large]))
    refused = await store.take([small, large])
    assert [h.allowed for h in refused] == [False, True]
    # The refusal held no slot of the budget that had room, not even for a moment.
    assert (await store.peek("{t}large", limit=5)).count == 1


async def test_concurrent_takes_never_overshoot_either_budget(store: Store) -> None:
    shared = Budget("{t}ip", 10, 60)
    results = await asyncio.gather(
        *(store.take([shared, Budget(f"{{t}}acct{i % 3}", 2, 60)]) for i in range(50))
    )
    granted = [r for r in results if all(h.allowed for h in r)]
    # Three accounts of 2 slots each: 6 attempts in all, within the shared budget of 10.
    assert len(granted) == 6
    assert (await store.peek("{t}ip", limit=10)).count == 6


async def test_a_slot_is_given_back_only_to_the_window_it_came_from(store: Store) -> None:
    old = await store.hit("k", limit=2, window=0.2)
    await asyncio.sleep(0.25)
    await store.hit("k", limit=2, window=0.2)
    await store.hit("k", limit=2, window=0.2)
    await store.release("k", window=old.window)
    assert (await store.peek("k", limit=2)).count == 2


async def test_give_back_releases_and_resets_in_one_call(store: Store) -> None:
    ip, acct = Budget("{t}ip", 10, 60), Budget("{t}acct", 5, 60)
    for _ in range(3):
        hits = await store.take([ip, acct])
    await store.give_back(release=[("{t}ip", hits[0].window)], reset=["{t}acct"])
    assert (await store.peek("{t}ip", limit=10)).count == 2
    assert (await store.peek("{t}acct", limit=5)).count == 0


async def test_releasing_a_key_that_holds_nothing_never_goes_below_zero(store: Store) -> None:
    hit = await store.hit("k", limit=2, window=60)
    for _ in range(3):
        await store.release("k", window=hit.window)
    assert (await store.peek("k", limit=2)).count == 0
    assert (await store.hit("k", limit=2, window=60)).count == 1


async def test_flags_are_seen_with_a_hit_and_expire(store: Store) -> None:
    assert not (await store.hit("k", limit=9, window=60, check_flag="f")).flagged
    await store.set_flag("f", ttl=0.2)
    assert (await store.hit("k", limit=9, window=60, check_flag="f")).flagged
    assert await store.has_flag("f")
    await asyncio.sleep(0.25)
    assert not await store.has_flag("f")


@pytest.mark.parametrize("second_ttl", [0.2, 60])
async def test_raising_a_flag_again_keeps_the_later_expiry(store: Store, second_ttl: float) -> None:
    # A revocation flag shortened by a later, shorter one would let revoked tokens back in.
    await store.set_flag("f", ttl=0.2 if second_ttl == 60 else 60)
    await store.set_flag("f", ttl=second_ttl)
    await asyncio.sleep(0.3)
    assert await store.has_flag("f")


async def test_a_guard_attempt_touches_one_redis_cluster_slot(shared_redis_url: str) -> None:
    raw = aioredis.Redis.from_url(shared_redis_url)
    await raw.flushdb()
    store = RedisStore.from_url(shared_redis_url)
    guard = AttemptGuard(store, GuardConfig(per_ip=Rate(10, 60), per_account=Rate(5, 60)))
    try:
        await guard.reserve(ip="203.0.113.9", account="alice@example.com")
        await guard.reserve(ip="203.0.113.9", device="device-1")
        await store.hit("rl:global:203.0.113.9", limit=5, window=60)
        await store.hit("rl:global:203.0.113.10", limit=5, window=60)
        keys = sorted(k.decode() for k in await raw.keys("*"))
    finally:
        await store.aclose()
        await raw.aclose()
    guard_keys = [k for k in keys if k.startswith("bastion:{auth}")]
    global_keys = [k for k in keys if "rl:global" in k]
    assert len(guard_keys) == 3
    assert len({key_slot(k.encode()) for k in guard_keys}) == 1
    assert global_keys == [
        "bastion:{rl:global:203.0.113.10}",
        "bastion:{rl:global:203.0.113.9}",
    ]
    # No key names an email in clear.
    assert not any("alice" in k for k in keys)


async def test_a_flagged_hit_is_one_round_trip_without_script_checks(
    redis_server: RedisServer,
) -> None:
    store = RedisStore.from_url(redis_server.url())
    raw = aioredis.Redis.from_url(redis_server.url())
    try:
        await store.hit("k", limit=100, window=60, check_flag="f")  # loads the script
        await raw.config_resetstat()
        for _ in range(10):
            await store.hit("k", limit=100, window=60, check_flag="f")
        stats = await raw.info("commandstats")
    finally:
        await store.aclose()
        await raw.aclose()
    assert stats["cmdstat_evalsha"]["calls"] == 10
    assert stats["cmdstat_exists"]["calls"] == 10
    assert not any("script" in name for name in stats)


async def test_an_unreachable_redis_raises_store_unavailable() -> None:
    store = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(StoreUnavailable):
            await store.hit("k", limit=1, window=60)
        # The breaker is open now: refused at once, whatever the operation.
        for op in (store.ping(), store.has_flag("f"), store.take([Budget("k", 1, 60)])):
            with pytest.raises(StoreUnavailable):
                await op
    finally:
        await store.aclose()


async def test_the_memory_store_forgets_expired_windows_and_flags() -> None:
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0])
    for i in range(500):
        await store.hit(f"ip-{i}", limit=5, window=60)
        await store.set_flag(f"flag-{i}", ttl=60)
    now[0] += 61
    for _ in range(20):  # each operation sweeps a bounded batch of expired keys
        await store.hit("live", limit=5, window=60)
    assert (await store.peek("ip-1", limit=5)).count == 0
    assert not await store.has_flag("flag-1")
    assert len(store._windows) == 1
    assert not store._flags


async def test_scripts_are_reloaded_when_redis_forgets_them(redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url())
    raw = aioredis.Redis.from_url(redis_server.url())
    try:
        await store.hit("k", limit=5, window=60, check_flag="f")
        await store.take([Budget("{t}a", 5, 60), Budget("{t}b", 5, 60)])
        await raw.script_flush()  # as after a restart: the script cache is empty
        flagged = await store.hit("k", limit=5, window=60, check_flag="f")
        taken = await store.take([Budget("{t}a", 5, 60), Budget("{t}b", 5, 60)])
    finally:
        await store.aclose()
        await raw.aclose()
    assert (flagged.allowed, flagged.count) == (True, 2)
    assert [h.count for h in taken] == [2, 2]

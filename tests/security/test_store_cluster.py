"""The store on a Redis Cluster, beyond what every backend shares (tests/security/
test_store.py): the URL, scripts reloaded on the node that owns their slot, and a dead
master that makes only its own slots fail fast."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from bastion.config import ConfigError, load_settings
from bastion.store import Budget, StoreUnavailable
from bastion.store.redis import _TAKE_SCRIPT as TAKE_SCRIPT
from bastion.store.redis import RedisStore
from bastion.store.urls import ClusterURL, mask_url, parse_cluster_url
from tests.conftest import flush_redis
from tests.servers import RedisClusterServers


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        (
            "redis+cluster://10.0.0.1:7000,10.0.0.2,[::1]:7002",
            ClusterURL((("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002))),
        ),
        (
            "rediss+cluster://app:s%40cret@cache.internal:6380/0",
            ClusterURL((("cache.internal", 6380),), "app", "s@cret", tls=True),
        ),
        ("redis+cluster://:pw@h:1/", ClusterURL((("h", 1),), None, "pw")),
    ],
)
def test_cluster_urls_name_every_startup_node_and_the_credentials(
    url: str, parsed: ClusterURL
) -> None:
    assert parse_cluster_url(url) == parsed


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis+cluster://h:7000/1", "database 0 only"),
        ("redis+cluster://h:7000,,h:7001", "empty host"),
        ("redis+cluster://h:99999", "out of range"),
        ("redis+cluster://h:7000?db=2", "no query string"),
        ("memcached://h:11211", "unsupported scheme"),
    ],
)
def test_a_bad_store_url_is_a_configuration_error_that_never_echoes_the_password(
    url: str, reason: str, tmp_path: Path
) -> None:
    secret_url = url.replace("://", "://user:hunter2-secret@")
    with pytest.raises(ConfigError) as caught:
        load_settings(redis_url=secret_url, var_dir=tmp_path)
    assert "BASTION_REDIS_URL" in str(caught.value)
    assert reason in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_masked_urls_keep_everything_but_the_password() -> None:
    assert mask_url("redis+cluster://app:pw@h1:7000,h2:7001/0") == (
        "redis+cluster://app:***@h1:7000,h2:7001/0"
    )
    assert mask_url("redis://:pw@h:6379/4") == "redis://:***@h:6379/4"
    assert mask_url("postgresql://u:pw@db/app?password=pw2&sslmode=require") == (
        "postgresql://u:***@db/app?password=***&sslmode=require"
    )
    assert mask_url("redis://h:6379/0") == "redis://h:6379/0"


def _master_of(cluster: RedisClusterServers, key: str) -> int:
    slot = key_slot(key.encode())
    return next(p for p, (lo, hi) in cluster.masters().items() if lo <= slot <= hi)


@pytest.fixture(scope="module")
def cluster_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """The run's shared cluster is not reachable as processes; this module's own one
    (its masters get their script caches flushed, and one gets frozen)."""
    # A long node timeout: a frozen master is never failed over during these tests.
    cluster = RedisClusterServers(tmp_path_factory.mktemp("cluster"), node_timeout_ms=15000)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


async def test_scripts_are_reloaded_on_the_master_that_owns_their_slot(
    cluster_servers: RedisClusterServers,
) -> None:
    url = cluster_servers.url()
    await flush_redis(url)
    store = RedisStore.from_url(url)
    budgets = [Budget("{t}a", 5, 60), Budget("{t}b", 5, 60)]
    owner = _master_of(cluster_servers, "bastion:{t}a")
    try:
        await store.hit("k", limit=5, window=60, check_flag="f")
        await store.take(budgets)
        for port in cluster_servers.masters():  # as after a restart or a promotion
            assert cluster_servers.command(port, "script", "flush").strip() == "OK"
        flagged = await store.hit("k", limit=5, window=60, check_flag="f")
        taken = await store.take(budgets)
    finally:
        await store.aclose()
    assert (flagged.allowed, flagged.count) == (True, 2)
    assert [h.count for h in taken] == [2, 2]
    node = aioredis.Redis(port=owner)
    try:
        cached = await node.script_exists(TAKE_SCRIPT.sha)
    finally:
        await node.aclose()
    assert cached == [True], "the take script was not cached again on the slot's master"


async def test_a_frozen_master_fails_fast_for_its_own_slots_only(
    cluster_servers: RedisClusterServers,
) -> None:
    url = cluster_servers.url()
    await flush_redis(url)
    store = RedisStore.from_url(url, timeout=0.5, cooldown=60)
    frozen_port = _master_of(cluster_servers, "bastion:{victim}")
    # A key of another master: a tag whose slot lies outside the frozen master's range.
    other = next(
        f"k{n}"
        for n in range(1000)
        if _master_of(cluster_servers, f"bastion:{{k{n}}}") != frozen_port
    )
    frozen = cluster_servers.node(frozen_port)
    try:
        assert (await store.hit("victim", limit=5, window=60)).count == 1
        frozen.freeze()
        with pytest.raises(StoreUnavailable, match="Timeout"):
            await store.hit("victim", limit=5, window=60)
        # The frozen master's breaker is open: refused without waiting on it again...
        with pytest.raises(StoreUnavailable, match="retrying shortly"):
            await store.hit("victim", limit=5, window=60)
        # ...while every other master's slots are served as before.
        assert (await store.hit(other, limit=5, window=60)).count == 1
        assert (await store.hit(other, limit=5, window=60)).count == 2
    finally:
        frozen.thaw()
        await store.aclose()
    cluster_servers.wait_ok()

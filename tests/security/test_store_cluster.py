"""The store on a Redis Cluster, beyond what every backend shares (tests/security/
test_store.py): the URL, each command sent straight to its slot's master (a hit and its
flag in one write when one master owns both), a stale slot map or a slot being migrated
followed to the right master, scripts reloaded on the node that owns their slot, and a
dead master that makes only its own slots fail fast."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
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
    with RedisClusterServers(tmp_path_factory.mktemp("cluster"), node_timeout_ms=15000) as cluster:
        yield cluster


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


def _tag_on(cluster: RedisClusterServers, port: int, prefix: str) -> str:
    """A store key name (``prefix`` + a number) whose slot the master at ``port`` owns."""
    return next(
        f"{prefix}{n}"
        for n in range(10000)
        if _master_of(cluster, f"bastion:{{{prefix}{n}}}") == port
    )


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The port of every write a connection makes (one per command or pipeline)."""
    sent: list[int] = []
    original = AbstractConnection.send_packed_command

    async def spy(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sent.append(int(self.port))  # type: ignore[attr-defined]
        await original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", spy)
    return sent


@pytest.mark.parametrize("same_master", [True, False], ids=["one-master", "two-masters"])
async def test_a_hit_and_its_flag_go_straight_to_their_masters_in_one_write_each(
    cluster_servers: RedisClusterServers, writes: list[int], same_master: bool
) -> None:
    url = cluster_servers.url()
    await flush_redis(url)
    masters = sorted(cluster_servers.masters())
    limit_owner = masters[0]
    flag_owner = masters[0] if same_master else masters[1]
    key = _tag_on(cluster_servers, limit_owner, "rl:global:")
    raised = _tag_on(cluster_servers, flag_owner, "revoked:up")
    lowered = _tag_on(cluster_servers, flag_owner, "revoked:down")
    store = RedisStore.from_url(url)
    try:
        await store.set_flag(raised, ttl=60)  # also opens a connection to each master
        await store.hit(key, limit=5, window=60)
        writes.clear()
        up = await store.hit(key, limit=5, window=60, check_flag=raised)
        down = await store.hit(key, limit=5, window=60, check_flag=lowered)
        sent = list(writes)
        for port in masters:  # as after a restart or a promotion
            cluster_servers.command(port, "script", "flush")
        writes.clear()
        reloaded = await store.hit(key, limit=5, window=60, check_flag=raised)
        resent = list(writes)
    finally:
        await store.aclose()
    assert (up.count, up.flagged, down.count, down.flagged) == (2, True, 3, False)
    assert (reloaded.count, reloaded.flagged) == (4, True)
    owners = [limit_owner] if same_master else sorted({limit_owner, flag_owner})
    # One write per master per hit (one pipeline on a shared master), nothing to any
    # other node and no redirection.
    assert sorted(sent) == sorted(owners * 2)
    # NOSCRIPT: the script alone goes again, as EVAL, to its own master.
    assert sorted(resent) == sorted([*owners, limit_owner])


async def test_a_stale_slot_map_is_corrected_by_the_redirection_and_counts_once(
    cluster_servers: RedisClusterServers,
) -> None:
    url = cluster_servers.url()
    await flush_redis(url)
    owner, stale = sorted(cluster_servers.masters())[:2]
    key = _tag_on(cluster_servers, owner, "rl:global:")
    flag = _tag_on(cluster_servers, stale, "revoked:")
    slot = key_slot(f"bastion:{{{key}}}".encode())
    store = RedisStore.from_url(url)
    client = store.client
    assert isinstance(client, RedisCluster)
    try:
        assert (await store.hit(key, limit=5, window=60)).count == 1
        # As after a resharding the client has not heard of: its map names another
        # master for the slot, which answers MOVED.
        slots = client.nodes_manager.slots_cache
        slots[slot] = [client.get_node(host="127.0.0.1", port=stale)]
        hit = await store.hit(key, limit=5, window=60, check_flag=flag)
        corrected = slots[slot][0].port
        again = await store.hit(key, limit=5, window=60)
    finally:
        await store.aclose()
    assert (hit.count, hit.flagged, again.count) == (2, False, 3)
    assert corrected == owner


async def test_a_slot_being_migrated_is_counted_on_the_master_it_moves_to(
    cluster_servers: RedisClusterServers,
) -> None:
    url = cluster_servers.url()
    await flush_redis(url)
    source, target = sorted(cluster_servers.masters())[:2]
    key = _tag_on(cluster_servers, source, "rl:global:")
    name = f"bastion:{{{key}}}"
    slot = str(key_slot(name.encode()))

    def node_id(port: int) -> str:
        return cluster_servers.command(port, "cluster", "myid").strip()

    store = RedisStore.from_url(url)
    moved = aioredis.Redis(port=target, single_connection_client=True)
    try:
        await store.ping()
        # The slot migrates: its keys not yet moved are answered ASK by the old master.
        cluster_servers.command(target, "cluster", "setslot", slot, "importing", node_id(source))
        cluster_servers.command(source, "cluster", "setslot", slot, "migrating", node_id(target))
        first = await store.hit(key, limit=5, window=60, check_flag="revoked:x")
        second = await store.hit(key, limit=5, window=60)
        await moved.execute_command("ASKING")
        on_target = await moved.hget(name, "n")
    finally:
        for port in (source, target):
            cluster_servers.command(port, "cluster", "setslot", slot, "stable")
        cluster_servers.command(target, "flushall")
        await moved.aclose()
        await store.aclose()
    assert (first.count, second.count) == (1, 2)
    assert on_target == b"2"

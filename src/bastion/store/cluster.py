"""The Redis Cluster client behind :class:`~bastion.store.redis.RedisStore`, and a look
at every node for ``bastion check``.

redis-py's asyncio cluster client does the routing: it learns the slot map from any
startup node, sends each command to the master of its key's slot, follows MOVED and ASK
redirections, and refreshes the map after a connection error (so that a promoted
replica is found). What Bastion sets on top:

- the same socket timeouts as on one server, and no backoff (a request waits for no
  sleep);
- MOVED patches the slot map slot by slot (see ``reinitialize_steps`` below);
- one retry, after refreshing the slot map, on a broken connection or a cluster that is
  reconfiguring, never on a timeout: a script that timed out may have run, and running
  it again would take a second slot (and a frozen master would cost the request a
  second full timeout).

The store's own commands skip redis-py's per-command routing (:func:`execute`): its
first attempt goes straight to the node's connections, and only what goes wrong is
handed to redis-py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterDownError,
    MaxConnectionsError,
    MovedError,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bastion.store.urls import parse_cluster_url

__all__ = ["Command", "NodeStatus", "cluster_nodes", "execute", "open_cluster"]

# A command and the key that routes it (its slot's master runs it).
Command = tuple[str, tuple[Any, ...]]

# Nothing ran: the slot is elsewhere (MOVED, ASK) or busy (TRYAGAIN).
_REDIRECTED = (AskError, TryAgainError)
# The slot map may be stale: refresh it, then one more attempt on the slot's master.
_REMAP = (RedisConnectionError, ClusterDownError, SlotNotCoveredError)


class _Cluster(RedisCluster):
    # redis-py retries these after refreshing its slot map; TimeoutError is left out
    # (see the module docstring).
    ERRORS_ALLOW_RETRY = (  # type: ignore[assignment]
        RedisConnectionError,
        ClusterDownError,
        SlotNotCoveredError,
    )


def open_cluster(url: str, *, timeout: float) -> RedisCluster:
    """A cluster client for a ``redis+cluster://`` URL; it connects on first use."""
    parsed = parse_cluster_url(url)
    return _Cluster(
        startup_nodes=[ClusterNode(host, port) for host, port in parsed.nodes],
        username=parsed.username,
        password=parsed.password,
        ssl=parsed.tls,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), retries=1),
        max_connections=512,
        # On MOVED, patch the one slot's owner rather than reloading the whole map
        # every few redirections: a reload closes every connection, the ones that
        # concurrent requests are using too (a connection error or CLUSTERDOWN still
        # reloads it).
        reinitialize_steps=0,
    )


async def execute(cluster: RedisCluster, commands: Sequence[Command]) -> list[Any]:
    """Run each command on the master of its key's slot: the commands of one node in one
    pipeline (one write, one round trip), the nodes at once. A command's own error
    (NOSCRIPT, a script error) is its result, as an exception instance; an outage
    raises (:class:`RedisError` or :class:`RedisClusterException`).

    This is redis-py's first attempt without its per-command machinery (command
    policies, key parsing, metrics, a task per command, and for EXISTS a pipeline per
    slot), which cost a request on the cluster as much CPU as the rest of its store
    work. What goes wrong goes to redis-py's own handling, as it would have from that
    first attempt: a redirection (nothing ran) to ``RedisCluster.execute_command``; a
    broken connection or a reconfiguring cluster refreshes the slot map, then one more
    attempt on the slot's master; a timeout is never retried (see the module docstring).
    """
    await cluster.initialize()  # a no-op while the slot map is known
    nodes = cluster.nodes_manager
    groups: dict[ClusterNode, list[int]] = {}
    for i, (key, _) in enumerate(commands):
        groups.setdefault(nodes.get_node_from_slot(cluster.keyslot(key)), []).append(i)
    results: list[Any] = [None] * len(commands)

    async def send(node: ClusterNode, batch: list[int]) -> None:
        try:
            if len(batch) == 1:
                results[batch[0]] = await node.execute_command(*commands[batch[0]][1])
                return
            pipe = [PipelineCommand(i, *commands[i][1]) for i in batch]
            await node.execute_pipeline(pipe)
            for command in pipe:
                results[command.position] = command.result
        except Exception as exc:  # judged below, command by command
            for i in batch:
                results[i] = exc

    if len(groups) == 1:
        await send(*next(iter(groups.items())))
    else:
        await asyncio.gather(*(send(node, batch) for node, batch in groups.items()))
    broken = [
        node
        for node, batch in groups.items()
        if any(isinstance(results[i], RedisConnectionError | RedisTimeoutError) for i in batch)
    ]
    for node in broken:  # what redis-py does for a node that failed a command
        node.update_active_connections_for_reconnect()
        await node.disconnect_free_connections()
        nodes.move_node_to_end_of_cached_nodes(node.name)
    errors = [r for r in results if isinstance(r, Exception) and not _final(r)]
    if not errors:
        return results
    final = [e for e in errors if not isinstance(e, _REDIRECTED + _REMAP)]
    final += [e for e in errors if isinstance(e, MaxConnectionsError | BusyLoadingError)]
    if final:
        if broken:
            cluster._initialize = True  # reload the slot map on the next command
        raise final[0]
    if any(isinstance(e, _REMAP) for e in errors):
        cluster._initialize = True
        await cluster.initialize(last_failed_node_name=broken[0].name if broken else None)

    async def again(i: int) -> None:
        key, args = commands[i]
        error = results[i]
        try:
            if isinstance(error, _REMAP):
                node = nodes.get_node_from_slot(cluster.keyslot(key))
                # Targeted: no retry of its own (this is the one), MOVED and ASK still
                # followed.
                results[i] = await cluster.execute_command(*args, target_nodes=node)
                return
            if isinstance(error, MovedError):
                await nodes.move_slot(error)
            results[i] = await cluster.execute_command(*args)
        except ResponseError as exc:
            if not _final(exc):
                raise
            results[i] = exc

    retried = [i for i, r in enumerate(results) if isinstance(r, Exception) and not _final(r)]
    outcomes = await asyncio.gather(*(again(i) for i in retried), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return results


def _final(error: Exception) -> bool:
    """The command ran, or was refused for itself: its answer, not the cluster's."""
    return isinstance(error, ResponseError) and not isinstance(error, _REDIRECTED + _REMAP)


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One node as the cluster sees it (``flags`` from CLUSTER NODES: ``master``,
    ``slave``, ``fail``...), and whether it answered PING itself."""

    name: str
    flags: str
    ok: bool
    detail: str = ""


async def cluster_nodes(client: RedisCluster, *, wait: float) -> list[NodeStatus]:
    """Every node the cluster knows of, replicas too (CLUSTER NODES from one node that
    answers), each pinged directly, waiting up to ``wait`` seconds. Raises :class:`RedisError` or
    :class:`RedisClusterException` when no node answers."""
    seen = await client.cluster_nodes()
    kwargs = client.get_connection_kwargs()
    # cluster_nodes() answers ``{"host:port": {...}}`` (redis-py parses CLUSTER NODES).
    entries = sorted(seen.items())

    async def ping(name: str, flags: str) -> NodeStatus:
        host, _, port = name.rpartition(":")
        node = Redis(
            host=host,
            port=int(port),
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            ssl=kwargs.get("connection_class") is SSLConnection,
            socket_timeout=wait,
            socket_connect_timeout=wait,
        )
        try:
            await node.ping()
        except (RedisError, OSError) as exc:
            return NodeStatus(name, flags, False, type(exc).__name__)
        finally:
            await node.aclose()
        if "fail" in flags.split(","):
            return NodeStatus(name, flags, False, "marked failed by the cluster")
        return NodeStatus(name, flags, True)

    return list(
        await asyncio.gather(*(ping(name, str(info.get("flags", ""))) for name, info in entries))
    )

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
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ClusterDownError, RedisError, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError

from bastion.store.urls import parse_cluster_url

__all__ = ["NodeStatus", "cluster_nodes", "open_cluster"]


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

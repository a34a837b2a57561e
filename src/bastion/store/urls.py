"""Store URLs: one Redis server (``redis://``, ``rediss://``, ``unix://``) or a Redis
Cluster (``redis+cluster://host:port,host:port,...``, ``rediss+cluster://`` for TLS).

Parsing only, without importing redis-py: the configuration validates
``BASTION_REDIS_URL`` with :func:`check_store_url`, and ``bastion check`` prints URLs
through :func:`mask_url`.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

__all__ = ["ClusterURL", "check_store_url", "is_cluster_url", "mask_url", "parse_cluster_url"]

SERVER_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
DEFAULT_PORT = 6379


@dataclass(frozen=True, slots=True)
class ClusterURL:
    """A cluster URL taken apart: the startup nodes (any reachable one is enough for
    the client to discover the others), the credentials, and whether to use TLS."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ValueError("a cluster URL names at least one host:port")
        for host, port in self.nodes:
            if not host or not 0 < port < 65536:
                raise ValueError(f"bad cluster node {host!r}:{port}")


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower() if "://" in url else ""


def is_cluster_url(url: str) -> bool:
    return _scheme(url) in CLUSTER_SCHEMES


def parse_cluster_url(url: str) -> ClusterURL:
    """``redis+cluster://[user:password@]host[:port],host[:port],...[/0]``.

    IPv6 hosts go in brackets (``[::1]:7000``). A cluster has database 0 only, so a path
    other than ``/`` or ``/0`` is refused, as is a query string (nothing reads it).
    Raises :class:`ValueError` saying what is wrong.
    """
    scheme = _scheme(url)
    if scheme not in CLUSTER_SCHEMES:
        raise ValueError(f"not a cluster URL (expected {' or '.join(CLUSTER_SCHEMES)}://)")
    rest = url.split("://", 1)[1]
    rest, _, fragment = rest.partition("#")
    rest, _, query = rest.partition("?")
    if query or fragment:
        raise ValueError("a cluster URL takes no query string or fragment")
    netloc, slash, path = rest.partition("/")
    if slash and path not in ("", "0"):
        raise ValueError("a Redis Cluster has database 0 only (end the URL with /0 or nothing)")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = urllib.parse.unquote(user) or None
        password = urllib.parse.unquote(secret) if colon else None
    nodes = []
    for item in hosts.split(","):
        if not item.strip():
            raise ValueError("empty host in the cluster URL")
        try:
            parts = urllib.parse.urlsplit("//" + item.strip())
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise ValueError(f"bad cluster node {item.strip()!r}: {exc}") from None
        if not host:
            raise ValueError(f"bad cluster node {item.strip()!r}")
        nodes.append((host, port or DEFAULT_PORT))
    return ClusterURL(tuple(nodes), username, password, scheme == "rediss+cluster")


def check_store_url(url: str) -> str:
    """``url`` itself if it names a store Bastion can open, else :class:`ValueError`."""
    scheme = _scheme(url)
    if scheme in CLUSTER_SCHEMES:
        parse_cluster_url(url)
    elif scheme not in SERVER_SCHEMES:
        known = ", ".join(f"{s}://" for s in SERVER_SCHEMES + CLUSTER_SCHEMES)
        raise ValueError(f"unsupported scheme {scheme or '(none)'!r}; use one of {known}")
    return url


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for output and logs)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    elif at and scheme.lower().startswith("redis"):
        userinfo = "***"  # redis://secret@host: a bare userinfo is the password
    path, question, query = tail.partition("?")
    if question:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        query = "&".join(
            f"{k}={'***' if 'password' in k.lower() else urllib.parse.quote(v)}" for k, v in pairs
        )
    return f"{scheme}{sep}{userinfo}{at}{hosts}{slash}{path}{question}{query}"

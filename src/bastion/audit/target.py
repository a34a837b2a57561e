"""The audited target and the source addresses the audit speaks from.

On Linux the whole of 127.0.0.0/8 is local: a socket may bind any of its addresses
and reach a server listening on 127.0.0.1. Against a loopback target the audit gives
each client it opens an address of its own, so the per-address limits of a defended
API (Bastion's 100 requests per 15 minutes, 10 failed logins per hour) apply to each
check's own traffic only and never leave a check unjudged. A remote target sees one
address, the machine's.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from bastion.security import BastionError

__all__ = ["AddressPool", "Target", "TargetError", "TransportFactory", "parse_target"]

# Makes the transport one client speaks through; the argument is its source address
# (None: the operating system's choice).
TransportFactory = Callable[[str | None], httpx.AsyncBaseTransport]


class TargetError(BastionError):
    """The target URL cannot be audited (malformed, or not loopback without consent)."""


@dataclass(frozen=True, slots=True)
class Target:
    """``url`` without a trailing slash; ``loopback`` when every address the host
    resolves to is a loopback address; ``spread`` when it is IPv4 loopback, so that
    the audit can speak from addresses of its own."""

    url: str
    loopback: bool
    spread: bool


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise TargetError(f"{host!r} does not resolve ({exc.strerror})") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def parse_target(url: str, *, authorized: bool) -> Target:
    """Check ``url`` and decide how to reach it. Raises :class:`TargetError` for a
    malformed URL, or for one that is not loopback unless ``authorized``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"{url!r} is not an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise TargetError(f"{url!r}: give the API's base URL, without a query or fragment")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetError(f"{url!r} has an invalid port") from None
    addresses = _resolve(parts.hostname, port)
    loopback = bool(addresses) and all(a.is_loopback for a in addresses)
    if not loopback and not authorized:
        raise TargetError(
            f"{parts.hostname} is not a loopback address: the audit attacks it (it locks "
            "accounts, exhausts limits). Pass --authorized if you own it or may test it."
        )
    netloc = parts.netloc
    v4 = [a for a in addresses if a.version == 4]
    spread = loopback and bool(v4)
    if spread and parts.hostname == "localhost":
        # "localhost" may resolve to ::1 first, which an IPv4 source cannot reach.
        netloc = f"{v4[0]}:{port}"
    base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return Target(url=base, loopback=loopback, spread=spread)


class AddressPool:
    """Fresh loopback source addresses, one per client, from a /16 chosen at random so
    that an audit run again soon after does not inherit the last run's spent budgets.
    127.0.0.0/16 (where 127.0.0.1 lives) is never used."""

    def __init__(self, *, spread: bool) -> None:
        self.spread = spread
        self._second = 1 + secrets.randbelow(254)
        self._next = 1 + secrets.randbelow(1000)

    def take(self) -> str | None:
        """A source address never handed out before, or None without spreading."""
        if not self.spread:
            return None
        n, self._next = self._next, self._next + 1
        if n >= 254 * 256:
            raise RuntimeError("the audit ran out of loopback source addresses")
        return f"127.{self._second}.{n // 254}.{n % 254 + 1}"


def default_transport(address: str | None) -> httpx.AsyncBaseTransport:
    """A real socket transport, bound to ``address`` when given."""
    return httpx.AsyncHTTPTransport(local_address=address, retries=0)

"""Who is the client? The socket peer, unless a trusted proxy vouches for someone else."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from bastion.security.asgi import ASGIApp, Receive, Scope, Send

__all__ = [
    "CLIENT_IP_KEY",
    "ClientIPConfig",
    "ClientIPMiddleware",
    "client_ip",
    "rate_key",
    "resolve_client_ip",
]

CLIENT_IP_KEY = "bastion.client_ip"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ClientIPConfig:
    """``trusted_proxies``: networks whose ``X-Forwarded-For`` is believed. Empty by default:
    then the header is ignored entirely, whatever it says."""

    trusted_proxies: tuple[Network, ...] = field(default=())

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str | Network]) -> ClientIPConfig:
        return cls(tuple(ipaddress.ip_network(c, strict=False) for c in cidrs))


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.9:51234"
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def resolve_client_ip(peer: str | None, forwarded_for: list[str], config: ClientIPConfig) -> str:
    """The right-most ``X-Forwarded-For`` hop that is not a trusted proxy, when the
    peer itself is trusted; otherwise the peer. Unparseable hops stop the walk there."""
    peer_addr = _parse(peer) if peer else None
    if peer_addr is None:
        return peer or "unknown"
    if not config.trusted_proxies or not _trusted(peer_addr, config):
        return str(peer_addr)
    current = peer_addr
    hops = [h for value in forwarded_for for h in value.split(",")]
    for hop in reversed(hops):
        addr = _parse(hop)
        if addr is None:
            break
        current = addr
        if not _trusted(addr, config):
            break
    return str(current)


def _trusted(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, config: ClientIPConfig) -> bool:
    return any(addr.version == net.version and addr in net for net in config.trusted_proxies)


def rate_key(ip: str, *, ipv6_prefix: int = 64) -> str:
    """The bucket a client's requests are counted in: its IPv4 address, or its IPv6
    /64 network (one subscriber's allocation: counting single IPv6 addresses would let
    a client rotate through 2**64 of them to reset every limit)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv4Address):
        return str(addr)
    return str(ipaddress.IPv6Network((addr, ipv6_prefix), strict=False))


def client_ip(scope: Scope) -> str:
    """The client IP that :class:`ClientIPMiddleware` resolved for this request."""
    value = scope.get(CLIENT_IP_KEY)
    if value is None:
        peer = scope.get("client")
        return str(peer[0]) if peer else "unknown"
    return str(value)


class ClientIPMiddleware:
    """Stores the resolved client IP in ``scope["bastion.client_ip"]``."""

    def __init__(self, app: ASGIApp, config: ClientIPConfig = ClientIPConfig()) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            forwarded: list[str] = []
            if self.config.trusted_proxies:
                forwarded = [
                    v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"
                ]
            scope[CLIENT_IP_KEY] = resolve_client_ip(
                peer[0] if peer else None, forwarded, self.config
            )
        await self.app(scope, receive, send)

"""400 for a ``Host`` the service does not answer to, before any routing.

A cache or proxy that passes ``Host`` through keys its entries, and a framework builds
its absolute URLs, on whatever name a client sent; answering only the names the service
is published under takes that lever away. Starlette's ``TrustedHostMiddleware`` answers
a bare ``text/plain`` 400 (and can redirect to ``www.``); this one answers the problem
details every other refusal does, and exempts the probes of load balancers.

Entries of :class:`AllowedHostsConfig`:

- ``shop.example.com``: that name on any port;
- ``shop.example.com:8443``: that name on that port only;
- ``*.example.com``: any name under ``example.com`` (at any depth), not ``example.com``
  itself; a port may follow (``*.example.com:8443``);
- IP literals as they appear in a ``Host`` header: ``127.0.0.1``, ``[::1]``.

Names are compared case-insensitively, without one trailing dot. A request with no
``Host``, more than one, or one that is not a host name (RFC 3986 ``host[:port]``) is
refused whatever the list says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from bastion.security.asgi import ASGIApp, Receive, Scope, Send
from bastion.security.problems import send_problem

__all__ = ["AllowedHostsConfig", "AllowedHostsMiddleware"]

# A DNS name (labels of letters, digits and hyphens), an IPv4 address, or an IPv6
# literal in brackets; then an optional port.
_HOST = re.compile(
    r"(?P<name>[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
    r"|\[[0-9a-f:.]+\])\.?(?::(?P<port>[0-9]{1,5}))?"
)
# Load balancers and orchestrators probe by address (an ALB or Kubernetes sends the
# target's IP as Host); these answers build no URL and reflect nothing.


def _split(value: str) -> tuple[str, str | None] | None:
    match = _HOST.fullmatch(value.lower())
    if match is None:
        return None
    return match.group("name"), match.group("port")


@dataclass(frozen=True, slots=True)
class AllowedHostsConfig:
    """``hosts``: the entries above; empty allows every host (development).
    ``exempt``: paths answered whatever the ``Host`` (none by default; health probes,
    which call by address, are the usual ones). ``problem_base``: the URL the 400's
    problem type is under (``about:blank`` without one).

    Raises :class:`ValueError` for an entry that is not a host name, or a bare ``*``
    (an empty list is how to allow every host)."""

    hosts: tuple[str, ...] = ()
    exempt: frozenset[str] = frozenset()
    problem_base: str | None = None
    _exact: frozenset[tuple[str, str | None]] = field(init=False, repr=False)
    _suffixes: tuple[tuple[str, str | None], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        exact: set[tuple[str, str | None]] = set()
        suffixes: list[tuple[str, str | None]] = []
        for entry in self.hosts:
            wildcard = entry.startswith("*.")
            parsed = _split(entry[2:] if wildcard else entry)
            if parsed is None or (wildcard and parsed[0].startswith("[")):
                raise ValueError(
                    f"{entry!r} is not a host name; expected name[:port], *.domain[:port]"
                    " or an IP address"
                )
            if wildcard:
                suffixes.append(("." + parsed[0], parsed[1]))
            else:
                exact.add(parsed)
        object.__setattr__(self, "_exact", frozenset(exact))
        object.__setattr__(self, "_suffixes", tuple(suffixes))

    def allows(self, host: str) -> bool:
        """Whether a request's ``Host`` value is one of the entries."""
        parsed = _split(host)
        if parsed is None:
            return False
        name, port = parsed
        if (name, None) in self._exact or (name, port) in self._exact:
            return True
        return any(
            name.endswith(suffix) and (want is None or want == port)
            for suffix, want in self._suffixes
        )


def _hosts(headers: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
    return [value for key, value in headers if key == b"host"]


class AllowedHostsMiddleware:
    """Refuses, with a 400 problem, HTTP requests whose ``Host`` the config does not
    allow (exempt paths aside). Passes everything through when ``hosts`` is empty."""

    def __init__(self, app: ASGIApp, config: AllowedHostsConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        config = self.config
        if scope["type"] != "http" or not config.hosts or scope["path"] in config.exempt:
            await self.app(scope, receive, send)
            return
        hosts = _hosts(scope["headers"])
        if len(hosts) == 1 and config.allows(hosts[0].decode("latin-1")):
            await self.app(scope, receive, send)
            return
        await send_problem(
            send,
            400,
            "This service does not answer to that host name.",
            base=self.config.problem_base,
        )

"""Security headers on every response: helmet's defaults with a real per-response CSP nonce.

The nonce is :attr:`SecurityHeadersConfig.nonce_bytes` (at least 16, so 128 bits) from
:mod:`secrets`, fresh for every response, put in ``scope["bastion.csp_nonce"]`` before
the app runs (read it with :func:`csp_nonce`) and written into the policy in place of
``{nonce}``. The guide's code sends the literal text ``'nonce-{nonce}'``: a nonce that
no script carries, so the policy looks nonce-based while nothing in it is.

Headers that name the software behind the service (``Server``, ``X-Powered-By``) are
dropped from every response, and the app cannot send its own value for a header this
middleware sets: the configured one wins.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from bastion.security.asgi import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CSP_NONCE_KEY",
    "DEFAULT_CSP",
    "DEFAULT_HEADERS",
    "SecurityHeadersConfig",
    "SecurityHeadersMiddleware",
    "csp_nonce",
]

CSP_NONCE_KEY = "bastion.csp_nonce"
NONCE = "{nonce}"
CSP = "content-security-policy"
UPGRADE = "upgrade-insecure-requests"

DEFAULT_CSP = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; img-src 'self' data: https:; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'self'; object-src 'none'; "
    "script-src-attr 'none'; upgrade-insecure-requests"
)
DEFAULT_HEADERS: Mapping[str, str] = MappingProxyType(
    {
        CSP: DEFAULT_CSP,
        "strict-transport-security": "max-age=31536000; includeSubDomains; preload",
        "x-content-type-options": "nosniff",
        "x-frame-options": "SAMEORIGIN",
        "referrer-policy": "no-referrer",
        "cross-origin-opener-policy": "same-origin",
        "cross-origin-resource-policy": "same-origin",
        "origin-agent-cluster": "?1",
        "x-dns-prefetch-control": "off",
        "x-download-options": "noopen",
        "x-permitted-cross-domain-policies": "none",
        "x-xss-protection": "0",
    }
)
# RFC 9110 field names are tokens; values are visible ASCII, spaces and tabs.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_VALUE = re.compile(r"^[\t\x20-\x7e]*$")
# Headers that name the software behind the service; they are dropped from every response.
_REVEALING = frozenset({b"server", b"x-powered-by"})


@dataclass(frozen=True, slots=True)
class SecurityHeadersConfig:
    """Which headers every response carries. The defaults are :data:`DEFAULT_HEADERS`.

    ``overrides`` maps a header name to a new value, or to ``None`` to send no such
    header; names are case-insensitive. ``{nonce}`` in any value is replaced by the
    response's nonce. ``upgrade_insecure_requests=False`` removes that directive from
    the CSP (for plain-HTTP development only). ``nonce_bytes`` below 16 is refused.

    Raises :class:`ValueError` for a name that is not a header name, a value with
    line breaks or other control characters, or a header that would reveal the server.
    """

    overrides: Mapping[str, str | None] = field(default_factory=dict)
    upgrade_insecure_requests: bool = True
    nonce_bytes: int = 16

    def __post_init__(self) -> None:
        if self.nonce_bytes < 16:
            raise ValueError("nonce_bytes must be at least 16 (128 bits)")
        lowered: dict[str, str | None] = {}
        for name, value in self.overrides.items():
            if not _TOKEN.match(name):
                raise ValueError(f"{name!r} is not a header name")
            if name.lower().encode() in _REVEALING:
                raise ValueError(f"{name} names the software; it is never sent")
            if value is not None and not _VALUE.match(value):
                raise ValueError(f"the value of {name} contains a line break or control character")
            lowered[name.lower()] = value
        object.__setattr__(self, "overrides", MappingProxyType(lowered))

    def headers(self) -> dict[str, str]:
        """The headers to send, ``{nonce}`` still in place."""
        merged: dict[str, str | None] = {**DEFAULT_HEADERS, **self.overrides}
        csp = merged.get(CSP)
        if csp is not None and not self.upgrade_insecure_requests:
            kept = [d for d in csp.split(";") if d.strip().lower() != UPGRADE]
            merged[CSP] = ";".join(kept).strip()
        return {k: v for k, v in merged.items() if v is not None}


def csp_nonce(scope: Scope) -> str:
    """This response's CSP nonce (empty when no header uses one)."""
    return str(scope.get(CSP_NONCE_KEY, ""))


class SecurityHeadersMiddleware:
    """helmet's security headers on every response, with a fresh CSP nonce each time
    (defends against XSS, clickjacking, MIME sniffing, downgrade to HTTP and leaking
    the Referer); headers naming the server software are dropped."""

    def __init__(
        self, app: ASGIApp, config: SecurityHeadersConfig = SecurityHeadersConfig()
    ) -> None:
        self.app = app
        headers = config.headers()
        self._nonce_bytes = config.nonce_bytes
        self._dropped = _REVEALING | {k.encode() for k in headers}
        self._static = [(k.encode(), v.encode()) for k, v in headers.items() if NONCE not in v]
        self._templated = [(k.encode(), v) for k, v in headers.items() if NONCE in v]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(self._nonce_bytes) if self._templated else ""
        scope[CSP_NONCE_KEY] = nonce

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() not in self._dropped
                ]
                kept.extend(self._static)
                kept.extend((k, v.replace(NONCE, nonce).encode()) for k, v in self._templated)
                message["headers"] = kept
            await send(message)

        await self.app(scope, receive, send_with_headers)

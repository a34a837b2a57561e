"""Which browser origins may make cookie-authenticated calls.

The ``Host`` header says nothing a client cannot choose, so the origin a page must come
from is configured (``public_origin``, the origin browsers load the storefront from) and
never derived from the request. :class:`OriginPolicy` is the rule the refresh and logout
routes apply beside ``SameSite=Strict``:

- no ``Origin`` header: allowed (not a browser's cross-site call: browsers send
  ``Origin`` on every ``POST``);
- ``public_origin`` set: allowed only when ``Origin`` is exactly that origin;
- unset, ``loopback=True`` (development): allowed only from a loopback origin
  (``localhost``, ``127.0.0.0/8``, ``[::1]``, any port);
- unset otherwise (production): every ``Origin`` is refused.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["OriginPolicy", "is_loopback", "parse_origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (IPv6 in brackets or not)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_origin(text: str) -> str:
    """``text`` as a browser serialises an origin (``https://shop.example.com``: lower
    case, default port left out). Raises :class:`ValueError` unless it is an ``https``
    origin (``http`` on loopback only) with no path, query, fragment or credentials."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r} is not an origin") from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if (
        scheme not in _DEFAULT_PORTS
        or not host
        or not host.isascii()
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or "?" in text
        or "#" in text
    ):
        raise ValueError(
            f"{text!r} is not an origin; expected scheme://host[:port], such as"
            " https://shop.example.com (international names in punycode)"
        )
    if scheme == "http" and not is_loopback(host):
        raise ValueError(f"{text!r} must be https (plain http is for loopback only)")
    shown = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        shown += f":{port}"
    return f"{scheme}://{shown}"


def _normalised(origin: str) -> str | None:
    try:
        return parse_origin(origin)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """``public_origin``: the browser-facing origin, already in :func:`parse_origin`'s
    form (raises :class:`ValueError` otherwise); ``loopback``: without one, accept
    loopback origins (development)."""

    public_origin: str | None = None
    loopback: bool = False

    def __post_init__(self) -> None:
        if self.public_origin is not None and parse_origin(self.public_origin) != (
            self.public_origin
        ):
            raise ValueError(
                f"public_origin must be in serialised form: {parse_origin(self.public_origin)!r}"
            )

    def allows(self, origin: str | None) -> bool:
        """Whether a request carrying this ``Origin`` header (None: none) may go on."""
        if origin is None:
            return True
        if self.public_origin is not None:
            # Compared as sent: browsers send the serialised form; "null" never matches.
            return origin.lower() == self.public_origin
        if not self.loopback:
            return False
        normalised = _normalised(origin)
        return normalised is not None and is_loopback(urlsplit(normalised).hostname or "")

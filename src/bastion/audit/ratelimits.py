"""Reading rate-limit answers: the RateLimit header fields in their three generations,
``Retry-After``, and the wrong-password attempts the limit checks send."""

from __future__ import annotations

import re
import secrets
from email.utils import parsedate_to_datetime

import httpx

__all__ = ["remaining", "retry_after_ok", "unknown_email", "wrong_password"]

_MEMBER = re.compile(r'"?([\w-]+)"?\s*;([^,]*)')


def _params(text: str) -> dict[str, str]:
    return {
        k.strip(): v.strip() for k, _, v in (p.partition("=") for p in text.split(";")) if k.strip()
    }


def remaining(headers: httpx.Headers) -> tuple[str, int | None]:
    """Which RateLimit fields a response carries, and the fewest requests they say are
    left: ``("ietf-draft-10", n)`` (``RateLimit: "name";r=n;t=s``), ``("ietf-draft-7", n)``
    (``RateLimit: limit=.., remaining=n``), ``("ietf-draft-6", n)``
    (``RateLimit-Remaining``), ``("legacy", n)`` (``X-RateLimit-Remaining``), or
    ``("none", None)``."""
    combined = headers.get("ratelimit")
    if combined:
        values = [int(m) for m in re.findall(r";\s*r=(\d+)", combined)]
        if values:
            return "ietf-draft-10", min(values)
        draft7 = re.search(r"remaining=(\d+)", combined)
        if draft7:
            return "ietf-draft-7", int(draft7.group(1))
    for style, name in (
        ("ietf-draft-6", "ratelimit-remaining"),
        ("legacy", "x-ratelimit-remaining"),
    ):
        value = headers.get(name)
        if value is not None and value.strip().isdigit():
            return style, int(value)
    return "none", None


def retry_after_ok(response: httpx.Response) -> bool:
    """``Retry-After`` is there and is delay-seconds or an HTTP date (RFC 9110)."""
    value = (response.headers.get("retry-after") or "").strip()
    if value.isdigit():
        return True
    try:
        return parsedate_to_datetime(value) is not None
    except (TypeError, ValueError):
        return False


def unknown_email() -> str:
    """An address no one registered (the audit's own registrations use another prefix)."""
    return f"audit-nobody-{secrets.token_hex(6)}@example.com"


def wrong_password() -> str:
    return f"Wrong-{secrets.token_urlsafe(12)}"

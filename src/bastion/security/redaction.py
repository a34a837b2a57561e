"""Redaction at the logging boundary: whatever reaches a log line passes through here.

Keys that name secrets lose their values; values that look like credentials (JWTs,
``Bearer``/``Basic`` credentials, ``password=...`` pairs, cookie headers) are masked
wherever they appear, so a secret smuggled into a path or a reason is masked too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "redact", "redact_text"]

REDACTED = "[redacted]"
_SECRET_KEYS = re.compile(
    r"pass(word)?|pwd|secret|token|authorization|cookie|session|api[-_]?key|credential|jwt",
    re.IGNORECASE,
)
_SECRET_VALUES = re.compile(
    r"eyJ[\w-]*\.[\w-]*\.?[\w-]*"  # JWT / JWS compact form
    r"|\b(?:bearer|basic)\s+[\w.~+/=-]+"  # Authorization credentials
    r"|\b(?:[\w-]*(?:pass(?:word)?|pwd|secret|token|cookie)[\w-]*)\s*[=:]\s*[^\s&;,]+"
    r"|__Secure-[\w-]+=[^\s;,]+",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    return _SECRET_VALUES.sub(REDACTED, text)


def redact(value: Any, *, key: str = "") -> Any:
    if key and _SECRET_KEYS.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value

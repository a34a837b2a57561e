"""Redaction at the logging boundary: whatever reaches a log line passes through here.

Two nets, because a secret can arrive anywhere a client can type:

* keys that name secrets (``password``, ``token``, ``authorization``, ``cookie``, ...)
  lose their values whatever the values are;
* values that look like credentials are masked wherever they appear in any text: JWTs,
  ``Bearer``/``Basic`` credentials, ``password=...`` or ``"token": "..."`` pairs (also
  percent-encoded), ``Cookie:`` and ``Authorization:`` header lines, ``__Secure-``
  cookies, and the ``input_value=...`` that pydantic quotes in its error messages.

:func:`redact` turns everything it does not know into text before masking it, so an
object whose ``repr`` carries a secret (an exception, say) cannot slip past.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "redact", "redact_text"]

REDACTED = "[redacted]"

_CREDENTIAL_NAMES = (
    r"pass(?:word|phrase|wd)?|pwd|secret|token|authori[sz]ation|cookie|session|"
    r"api[-_]?key|credential|jwt|private[-_]?key"
)
_SECRET_KEYS = re.compile(_CREDENTIAL_NAMES, re.IGNORECASE)
_SEPARATOR = r"""["']?\s*(?:=|:|%3[aAdD])\s*"""
_SECRET_VALUES = re.compile(
    # Whole header lines whose every byte is a credential.
    r"\b(?:set-)?cookie\s*:[^\r\n]*"
    r"|\bauthori[sz]ation\s*:[^\r\n]*"
    # JWT / JWS / JWE compact form: a base64url JSON header, then dot-separated parts.
    r"|eyJ[\w-]*(?:\.[\w-]*)+"
    # Authorization credentials wherever they are quoted.
    r"|\b(?:bearer|basic|digest)\s+[\w.~+/=-]+"
    # key=value, key: value, "key": "value" whose key names a secret.
    rf"|[\w-]*(?:{_CREDENTIAL_NAMES})[\w-]*{_SEPARATOR}"
    r"""(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s&;,"'}\]]+)"""
    # Prefixed cookies, whatever their name.
    r"|__(?:Secure|Host)-[\w-]+=[^\s;,]*"
    # pydantic quotes the offending input in its messages.
    r"""|input_value=(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s,\]]+)""",
    re.IGNORECASE,
)


# Every alternative of _SECRET_VALUES contains one of these words, so text without any
# of them has nothing to mask. Searching for them is cheap; the full pattern (its
# key=value branch starts with [\w-]*) costs a backtracking attempt at every character,
# and ran on every field of every log line.
_TRIGGERS = re.compile(
    r"cookie|authori[sz]|eyj|bearer|basic|digest|pass|pwd|secret|token|session|api|"
    r"credential|jwt|private|__(?:secure|host)-|input_value",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """``text`` with every credential-shaped part replaced by ``[redacted]``."""
    if _TRIGGERS.search(text) is None:
        return text
    return _SECRET_VALUES.sub(REDACTED, text)


def redact(value: Any, *, key: str = "") -> Any:
    """A copy of ``value`` fit for a log line: JSON scalars, lists and dicts only, with
    the values of secret-named keys dropped and credential-shaped text masked."""
    if key and _SECRET_KEYS.search(key):
        return REDACTED
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {str(k): redact(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return redact_text(bytes(value).decode("utf-8", "replace"))
    return redact_text(str(value))

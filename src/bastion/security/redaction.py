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
_SEPARATOR = r"""["']?\s*+(?:=|:|%3[aAdD])\s*+"""
# A quoted value ends at its closing quote, or where the text ends: a log field cut
# short in the middle of a quoted secret still has it masked.
_QUOTED_VALUE = r"""(?:"(?:[^"\\]|\\.?)*+(?:"|\Z)|'(?:[^'\\]|\\.?)*+(?:'|\Z))"""


def _word_containing(needle: str) -> str:
    """A whole word (``[\\w-]``) that contains ``needle``, matched in linear time.

    The obvious ``[\\w-]*needle[\\w-]*`` backtracks: tried from every position of a long
    word, each try rescans the rest of it, so a few hundred bytes of ``tokentoken...``
    in a logged field held the event loop for seconds (cubic in the word's length).
    Here a match may only start where a word starts, the lookahead finds the needle
    without leaving the word, and the possessive ``++`` takes the word once and never
    gives any of it back. (Possessive quantifiers need Python 3.11.)"""
    return rf"(?<![\w-])(?=[\w-]*?(?:{needle}))[\w-]++"


_SECRET_VALUES = re.compile(
    # Whole header lines whose every byte is a credential.
    r"\b(?:set-)?cookie\s*+:[^\r\n]*+"
    r"|\bauthori[sz]ation\s*+:[^\r\n]*+"
    # JWT / JWS / JWE compact form: a base64url JSON header, then dot-separated parts
    # (the whole word that holds it, whatever is glued in front).
    rf"|{_word_containing('eyJ')}(?:\.[\w-]*+)++"
    # Authorization credentials wherever they are quoted.
    r"|\b(?:bearer|basic|digest)\s++[\w.~+/=-]++"
    # key=value, key: value, "key": "value" whose key names a secret.
    rf"|{_word_containing(_CREDENTIAL_NAMES)}{_SEPARATOR}"
    rf"""(?:{_QUOTED_VALUE}|[^\s&;,"'}}\]]++)"""
    # Prefixed cookies, whatever their name.
    rf"|{_word_containing('__(?:Secure|Host)-')}=[^\s;,]*+"
    # pydantic quotes the offending input in its messages.
    rf"|input_value=(?:{_QUOTED_VALUE}|[^\s,\]]++)",
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

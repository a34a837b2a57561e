"""Context-specific words in a password: what is left once they are taken out.

A password made of the service's own name, the user's email or name, and a little
padding (``Bastion-Orders-2026``, ``alice.smith@example.com!``) is easy to guess for
anyone who knows where it is used, yet a general strength estimate scores the padding
and the joins highly. :func:`without_context` takes those words out, written in any
case or with common digit-for-letter swaps (``b4st10n``), so that the caller can judge
whether the rest would be strong on its own (ASVS 5.0 V6.2.11).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = ["MIN_WORD", "context_words", "without_context"]

# Shorter fragments (``com``, ``net``, initials) are everywhere and would strip strong
# passwords of letters that carry their strength.
MIN_WORD = 4
# One character for one character, so that positions in the folded text are positions
# in the password.
_LEET = {"4": "a", "@": "a", "3": "e", "1": "i", "!": "i", "0": "o", "5": "s", "$": "s"}
_LEET |= {"7": "t", "+": "t"}
_SPLIT = re.compile(r"[\W_]+")


def _fold(text: str) -> str:
    """Lower case, digit-for-letter swaps undone, one character per character."""
    out = []
    for c in text:
        low = c.lower()
        low = low if len(low) == 1 else c
        out.append(_LEET.get(low, low))
    return "".join(out)


def context_words(context: Iterable[str]) -> list[str]:
    """The words to look for, longest first: each context item whole (an email, a
    name) and each of its alphanumeric parts of at least :data:`MIN_WORD` characters."""
    words: set[str] = set()
    for item in context:
        text = unicodedata.normalize("NFKC", item).lower().strip()
        if len(text) >= MIN_WORD:
            words.add(text)
        words.update(p for p in _SPLIT.split(text) if len(p) >= MIN_WORD)
    return sorted(words, key=lambda w: (-len(w), w))


def without_context(password: str, context: Iterable[str]) -> str | None:
    """``password`` with every context word taken out, or None when it holds none."""
    words = context_words(context)
    if not words:
        return None
    folded = _fold(password)
    taken = [False] * len(password)
    for word in words:
        target = _fold(word)
        start = folded.find(target)
        while start != -1:
            taken[start : start + len(target)] = [True] * len(target)
            start = folded.find(target, start + len(target))
    if not any(taken):
        return None
    return "".join(c for c, gone in zip(password, taken, strict=True) if not gone)

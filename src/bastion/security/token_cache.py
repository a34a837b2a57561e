"""Remember tokens already verified, so a client's every request does not pay for it again.

A signed token either verifies or it does not, so the exact string that verified once
verifies again until it expires: caching ``token -> claims`` changes no answer, as long
as expiry is checked on every use (it is) and revocation is checked outside the
signature (it is: by session, on every request). The cache is bounded; an attacker
sending endless fresh tokens only fills it with failures, which are never cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["VerifiedTokenCache"]


class VerifiedTokenCache:
    """Claims of tokens that already verified, bounded in size and checked for expiry
    on every use, so that a client's requests with one token cost one verification;
    a token that failed is never remembered, so a forged one is checked every time."""

    __slots__ = ("_clock", "_entries", "max_entries")

    def __init__(self, *, max_entries: int = 4096, clock: Callable[[], float] = time.time) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, dict[str, Any]] = {}

    def get(self, token: str) -> dict[str, Any] | None:
        claims = self._entries.get(token)
        if claims is None:
            return None
        if claims["exp"] <= self._clock():
            del self._entries[token]
            return None
        return claims

    def put(self, token: str, claims: dict[str, Any]) -> None:
        if len(self._entries) >= self.max_entries:
            now = self._clock()
            self._entries = {t: c for t, c in self._entries.items() if c["exp"] > now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[token] = claims

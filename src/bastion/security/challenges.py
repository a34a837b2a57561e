"""The step between a correct password and the second factor: a login challenge.

A correct password alone gets no session, only a challenge: a short-lived signed token
naming the user and the methods that may complete the login. It is bound to the
browser the password came from (the SHA-256 of a random ``binding`` the caller keeps
in an HttpOnly cookie, never readable by a script), works once, and dies after
``max_failures`` wrong codes. Its state (used, failures) is in the store, so every
instance sees it.

The challenge's own failure count is checked before each code and counted after a
wrong one; concurrent guesses against one challenge are bounded by the attempt guard
the caller runs each code through (its reservations are atomic), as every password
guess is.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from bastion.security.exceptions import SecurityError
from bastion.store import Store

__all__ = ["ChallengeClaims", "ChallengeRefused", "LoginChallenges"]

TYP = "mfa-challenge"
_MAX_TOKEN = 2048
# Store windows outlive the token by this much: instances' clocks differ a little.
_MARGIN = 60


class ChallengeRefused(SecurityError):
    """A login challenge that cannot complete a login: forged or tampered with,
    expired, presented without the binding of the browser it was issued to, already
    used, or dead after too many wrong codes. One error; ``reason`` says which (401)."""

    status = 401


@dataclass(frozen=True, slots=True)
class ChallengeClaims:
    """A verified challenge: whose login it is, by which methods it may complete,
    its id and its end (seconds since the epoch)."""

    user_id: str
    methods: tuple[str, ...]
    jti: str
    expires_at: int


def _binding_digest(binding: str) -> str:
    return hashlib.sha256(binding.encode()).hexdigest()


class LoginChallenges:
    """Issues and checks the challenges of a half-done login, so that a password alone
    never yields a session, a challenge lifted from a response body cannot be
    completed in another browser, and it gives at most ``max_failures`` tries. ``key``
    (32 to 64 bytes, the same on every instance) signs them (HS256)."""

    def __init__(
        self,
        store: Store,
        *,
        key: bytes,
        ttl: int = 300,
        max_failures: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 32 <= len(key) <= 64:
            raise ValueError("the challenge key is 32 to 64 bytes")
        if not 30 <= ttl <= 3600:
            raise ValueError("a challenge lives 30 seconds to an hour")
        if not 1 <= max_failures <= 20:
            raise ValueError("a challenge allows 1 to 20 wrong codes")
        self.store = store
        self.ttl = ttl
        self.max_failures = max_failures
        self._key = key
        self._clock = clock

    def issue(self, user_id: str, *, binding: str, methods: Sequence[str]) -> str:
        """A challenge for ``user_id``'s login, bound to ``binding``."""
        if not binding:
            raise ValueError("a challenge needs a binding")
        if not methods:
            raise ValueError("a challenge needs at least one method")
        now = int(self._clock())
        claims = {
            "sub": user_id,
            "methods": list(methods),
            "bnd": _binding_digest(binding),
            "jti": secrets.token_urlsafe(16),
            "iat": now,
            "exp": now + self.ttl,
        }
        return jwt.encode(claims, self._key, algorithm="HS256", headers={"typ": TYP})

    def _used_key(self, jti: str) -> str:
        return f"{{mfa:{jti}}}used"

    def _failures_key(self, jti: str) -> str:
        return f"{{mfa:{jti}}}failures"

    def _decode(self, challenge: str) -> dict[str, Any]:
        if not isinstance(challenge, str) or not 0 < len(challenge) <= _MAX_TOKEN:
            raise ChallengeRefused("malformed challenge")
        try:
            header = jwt.get_unverified_header(challenge)
            claims: dict[str, Any] = jwt.decode(
                challenge,
                self._key,
                algorithms=["HS256"],
                options={"require": ["sub", "jti", "exp", "iat"], "verify_exp": False},
            )
        except jwt.PyJWTError as exc:
            raise ChallengeRefused(f"invalid challenge: {type(exc).__name__}") from None
        if header.get("typ") != TYP:
            raise ChallengeRefused("not a challenge")
        # Time is this object's clock, not PyJWT's: one clock for issuing and checking.
        if not isinstance(claims["exp"], int) or claims["exp"] <= self._clock():
            raise ChallengeRefused("challenge expired")
        methods = claims.get("methods")
        if not (isinstance(methods, list) and all(isinstance(m, str) for m in methods)):
            raise ChallengeRefused("challenge names no methods")
        if not all(isinstance(claims.get(k), str) for k in ("sub", "jti", "bnd")):
            raise ChallengeRefused("malformed challenge claims")
        return claims

    async def check(self, challenge: str, *, binding: str | None) -> ChallengeClaims:
        """The challenge's claims if it can still complete a login from the browser
        holding ``binding``; else :class:`ChallengeRefused`. Checks only: call
        :meth:`failed` after a wrong code, :meth:`consume` before completing."""
        claims = self._decode(challenge)
        if not binding or len(binding) > 256:
            raise ChallengeRefused("no binding presented")
        if not hmac.compare_digest(claims["bnd"], _binding_digest(binding)):
            raise ChallengeRefused("binding does not match")
        jti = claims["jti"]
        used, failures = await asyncio.gather(
            self.store.peek(self._used_key(jti), limit=1),
            self.store.peek(self._failures_key(jti), limit=self.max_failures),
        )
        if not used.allowed:
            raise ChallengeRefused("challenge already used")
        if not failures.allowed:
            raise ChallengeRefused("too many wrong codes")
        return ChallengeClaims(
            user_id=claims["sub"],
            methods=tuple(claims["methods"]),
            jti=jti,
            expires_at=claims["exp"],
        )

    async def failed(self, claims: ChallengeClaims) -> None:
        """Count one wrong code against the challenge; the last allowed one kills it."""
        await self.store.hit(
            self._failures_key(claims.jti), limit=self.max_failures, window=self.ttl + _MARGIN
        )

    async def consume(self, claims: ChallengeClaims) -> None:
        """Spend the challenge (once, on every instance): :class:`ChallengeRefused` if
        it was spent already."""
        hit = await self.store.hit(self._used_key(claims.jti), limit=1, window=self.ttl + _MARGIN)
        if not hit.allowed:
            raise ChallengeRefused("challenge already used")

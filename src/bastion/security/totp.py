"""RFC 6238 time-based one-time codes (pyotp), each usable once, on every instance.

A code is accepted for its own time step and ``valid_window`` steps either side (a
phone's clock drifts, a user types slowly). Within that span anyone who saw the code
(over a shoulder, in a phishing proxy's log) could use it again: RFC 6238 section 5.2
says the verifier must not accept it a second time. So each accepted step is spent in
the store with one atomic ``hit(limit=1)`` under a key of that user and step: two
instances, or twenty concurrent requests, accept a code once in all.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyotp
from pyotp.utils import strings_equal

from bastion.security.exceptions import SecurityError
from bastion.store import Store

__all__ = ["InvalidCode", "TotpConfig", "TotpVerifier"]


class InvalidCode(SecurityError):
    """A one-time code refused: wrong, malformed, outside the window, or already used
    (a replay). One error for all, so the answer never says which; ``reason`` does,
    for the log (401)."""

    status = 401


@dataclass(frozen=True, slots=True)
class TotpConfig:
    """``issuer``: the name authenticator apps show; ``digits`` (6 to 8, RFC 6238's
    range), ``interval`` (seconds per step) and ``valid_window`` (steps accepted
    either side of the current one) must match what the app was given in the URI."""

    issuer: str
    digits: int = 6
    interval: int = 30
    valid_window: int = 1

    def __post_init__(self) -> None:
        if not self.issuer.strip() or ":" in self.issuer or not self.issuer.isprintable():
            raise ValueError("the issuer is a printable name without ':'")
        if not 6 <= self.digits <= 8:
            raise ValueError("a TOTP code has 6 to 8 digits")
        if not 15 <= self.interval <= 300:
            raise ValueError("a TOTP interval is 15 to 300 seconds")
        if not 0 <= self.valid_window <= 3:
            raise ValueError("the valid window is 0 to 3 steps either side")


class TotpVerifier:
    """Checks TOTP codes so that a wrong code, a code of another time, and a code
    used before (here or on another instance sharing the store) are refused alike,
    with a constant-time comparison. ``key`` (16 to 64 bytes, the same on every
    instance) keys the digest that names (user, step) in the store: a dump of the
    store says nobody's id."""

    def __init__(
        self,
        store: Store,
        config: TotpConfig,
        *,
        key: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 16 <= len(key) <= 64:
            raise ValueError("the replay key is 16 to 64 bytes")
        self.store = store
        self.config = config
        self._key = key
        self._clock = clock

    def new_secret(self) -> str:
        """A fresh secret: 160 random bits in base32 (RFC 4226's recommended length)."""
        return pyotp.random_base32(length=32)

    def _totp(self, secret: str) -> pyotp.TOTP:
        c = self.config
        return pyotp.TOTP(secret, digits=c.digits, interval=c.interval, issuer=c.issuer)

    def uri(self, secret: str, account_name: str) -> str:
        """The ``otpauth://totp/...`` URI an authenticator app reads (from a QR code)."""
        return self._totp(secret).provisioning_uri(
            name=account_name, issuer_name=self.config.issuer
        )

    def code_at(self, secret: str, when: float) -> str:
        """The code of ``secret`` at ``when`` (for tests and for showing what a code
        looks like, never for checking one: :meth:`verify` does that)."""
        return self._totp(secret).at(when)

    def replay_key(self, user_id: str, step: int) -> str:
        digest = hmac.new(self._key, f"{user_id}\x00{step}".encode(), hashlib.sha256)
        # The whole name is its own hash tag: one key per slot, spread over a cluster.
        return f"{{totp:{digest.hexdigest()[:32]}}}"

    async def verify(self, secret: str, code: str, *, user_id: str) -> None:
        """Return if ``code`` is the user's code for a step within the window and that
        step was never accepted before; else :class:`InvalidCode`. Raises
        :class:`~bastion.store.StoreUnavailable` when the store cannot say whether the
        code was used (fail closed: never accept it unchecked)."""
        c = self.config
        if not (isinstance(code, str) and len(code) == c.digits and code.isascii()):
            raise InvalidCode("malformed code")
        if not code.isdigit():
            raise InvalidCode("malformed code")
        totp = self._totp(secret)
        now_step = int(self._clock()) // c.interval
        matched: int | None = None
        # Every step of the window is compared (no early exit), the current one last
        # so that it wins a tie: the time taken says nothing of which step matched.
        for offset in (*range(-c.valid_window, 0), *range(c.valid_window, 0, -1), 0):
            step = now_step + offset
            if strings_equal(code, totp.generate_otp(step)):
                matched = step
        if matched is None:
            raise InvalidCode("wrong code")
        # Spent for as long as any instance could still accept it, and one step more.
        lifetime = c.interval * (2 * c.valid_window + 1) + c.interval
        hit = await self.store.hit(self.replay_key(user_id, matched), limit=1, window=lifetime)
        if not hit.allowed:
            raise InvalidCode("code already used")

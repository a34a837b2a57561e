"""The signed, one-use state between a WebAuthn ceremony's options and its verification.

The server keeps nothing between the two requests: the state token carries the
challenge it sent, signed (HS256) so that a client cannot choose its own, with a
purpose (``register`` or ``login``) so that one ceremony's state never completes the
other, and a ``jti`` spent in the store on first use, on every instance sharing it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import Any, Literal

import jwt

from bastion.security.exceptions import SecurityError
from bastion.store import Store

__all__ = ["STATE_TTL", "PasskeyRefused", "PasskeyState", "Purpose"]

STATE_TTL = 300  # seconds: the options' timeout is at most this
Purpose = Literal["register", "login"]
_TYP = "passkey-state"
_REQUIRED = ("exp", "iat", "jti", "typ", "purpose", "challenge")


class PasskeyRefused(SecurityError):
    """A passkey ceremony refused (401): a state that is forged, expired, spent or for
    another ceremony or user, or a credential that fails any WebAuthn check. One error
    for all of them; ``reason`` (fixed text, never the client's) says which."""

    status = 401


class PasskeyState:
    """Issues and spends the state tokens of one relying party. ``key``: at least 32
    bytes, derived for this use alone (HKDF, info ``b"bastion passkey state"``)."""

    def __init__(self, store: Store, *, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the passkey state key must be at least 32 bytes")
        self.store = store
        self._key = key
        # The store names spent states by a keyed digest of their jti: a dump of the
        # store cannot be matched against states seen elsewhere.
        self._id_key = hmac.new(key, b"passkey state ids", hashlib.sha256).digest()

    def issue(self, purpose: Purpose, challenge: str, *, user_id: str | None = None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "typ": _TYP,
            "purpose": purpose,
            "challenge": challenge,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + STATE_TTL,
        }
        if user_id is not None:
            claims["sub"] = user_id
        return jwt.encode(claims, self._key, algorithm="HS256")

    def open(self, state: object, purpose: Purpose) -> dict[str, Any]:
        """The state's claims, checked but not spent: :class:`PasskeyRefused` unless it
        is ours, unexpired and for ``purpose``."""
        if not isinstance(state, str) or len(state) > 2048:
            raise PasskeyRefused("malformed state")
        try:
            claims: dict[str, Any] = jwt.decode(
                state, self._key, algorithms=["HS256"], options={"require": list(_REQUIRED)}
            )
        except jwt.ExpiredSignatureError:
            raise PasskeyRefused("state expired") from None
        except jwt.PyJWTError:
            raise PasskeyRefused("state not accepted") from None
        if claims["typ"] != _TYP or claims["purpose"] != purpose:
            raise PasskeyRefused("state for another ceremony")
        if not isinstance(claims["jti"], str) or not isinstance(claims["challenge"], str):
            raise PasskeyRefused("state not accepted")
        return claims

    async def spend(self, claims: dict[str, Any]) -> None:
        """Use the state up: the first call passes, every later one (here or on any
        instance sharing the store) raises :class:`PasskeyRefused`. Raises
        :class:`~bastion.store.StoreUnavailable` when the store cannot say."""
        digest = hashlib.blake2s(claims["jti"].encode(), digest_size=16, key=self._id_key)
        hit = await self.store.hit(
            f"{{passkey}}state:{digest.hexdigest()}", limit=1, window=STATE_TTL
        )
        if not hit.allowed:
            raise PasskeyRefused("state already used")

"""Values sealed at rest: AES-256-GCM under a key derived from a server secret.

A sealed value is text, ``v1.<kid>.<base64url(nonce | ciphertext | tag)>``: the kid names
the secret whose derived key sealed it, so that a rotated-away secret (kept as a
previous one) still opens what it sealed, and :meth:`SecretBox.needs_reseal` says which
values to seal again under the current one. The ``context`` (the row's owner, say) is
authenticated with the ciphertext: a sealed value copied into another user's row does
not open there.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.security.exceptions import BastionError
from bastion.security.keys import derive_key
from bastion.security.secret import Secret

__all__ = ["SealBroken", "SecretBox"]

_VERSION = "v1"
_NONCE = 12  # bytes: GCM's standard nonce, random per seal (2^-32 collision bound far off)
_TAG = 16


class SealBroken(BastionError):
    """A sealed value that does not open: tampered with, truncated, moved to another
    context, sealed under a key this box does not hold, or not a sealed value at all.
    One error for all of them; ``reason`` says which, for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SecretBox:
    """Seals secrets stored at rest (a TOTP seed in a database row) so that a stolen
    dump of the table, or a value moved to another row, yields nothing: AES-256-GCM
    under ``HKDF-SHA256(keys[i], info=label)``, the first key sealing, every key
    opening what it sealed (rotation)."""

    __slots__ = ("_current", "_keys")

    def __init__(self, keys: Sequence[Secret], *, label: bytes) -> None:
        if not keys:
            raise ValueError("a secret box needs at least one key")
        if not label:
            raise ValueError("a secret box needs a label: one derived key per use")
        self._keys: dict[str, AESGCM] = {}
        for secret in keys:
            self._keys.setdefault(secret.key_id, AESGCM(derive_key(secret, label)))
        self._current = keys[0].key_id

    def seal(self, plaintext: bytes, *, context: bytes) -> str:
        """``plaintext`` sealed under the current key, bound to ``context``."""
        nonce = os.urandom(_NONCE)
        sealed = self._keys[self._current].encrypt(nonce, plaintext, context)
        return f"{_VERSION}.{self._current}.{_b64(nonce + sealed)}"

    def open(self, sealed: str, *, context: bytes) -> bytes:
        """The plaintext, or :class:`SealBroken` (never a partial or unchecked value)."""
        version, kid, body = self._parts(sealed)
        if version != _VERSION:
            raise SealBroken("unknown seal version")
        aead = self._keys.get(kid)
        if aead is None:
            raise SealBroken("sealed under a key this box does not hold")
        try:
            raw = _unb64(body)
        except (binascii.Error, ValueError):
            raise SealBroken("seal is not base64url") from None
        if len(raw) < _NONCE + _TAG:
            raise SealBroken("seal is truncated")
        try:
            return aead.decrypt(raw[:_NONCE], raw[_NONCE:], context)
        except InvalidTag:
            raise SealBroken("seal does not authenticate (tampered or another context)") from None

    def needs_reseal(self, sealed: str) -> bool:
        """Whether ``sealed`` was sealed under a key other than the current one (or is
        not a current seal at all): open it and seal it again."""
        version, kid, _ = self._parts(sealed, strict=False)
        return version != _VERSION or kid != self._current

    @staticmethod
    def _parts(sealed: str, *, strict: bool = True) -> tuple[str, str, str]:
        parts = sealed.split(".") if isinstance(sealed, str) else []
        if len(parts) != 3 or not all(parts):
            if strict:
                raise SealBroken("not a sealed value")
            return "", "", ""
        return parts[0], parts[1], parts[2]

"""Recovery codes: the way in when the phone with the authenticator app is lost.

Each code is 50 random bits, written ``xxxxx-xxxxx`` in lowercase RFC 4648 base32
(no 0, 1, 8 or 9 to confuse with letters). Only keyed digests are stored: a copy of the
table gives no code, and without the key not even a way to test guesses offline. Each
is spent once: the caller marks a digest used in one conditional write (``UPDATE ...
WHERE used_at IS NULL``), so that two requests racing with one code get one success.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

__all__ = ["RecoveryCodes"]

_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_LENGTH = 10  # characters of 5 bits: 50 bits a code
_SHAPE = re.compile(f"[{_ALPHABET}]{{{_LENGTH}}}")
_SEPARATORS = str.maketrans("", "", " -\t")


class RecoveryCodes:
    """Makes and recognises one-use recovery codes, so that a user who lost their
    second factor is not locked out, without the codes becoming a weaker way in: 50
    random bits each (guessing one online is hopeless under the lockout), stored as
    HMAC-SHA256 digests under ``key`` (16 to 64 bytes), never in clear."""

    __slots__ = ("_key", "count")

    def __init__(self, key: bytes, *, count: int = 10) -> None:
        if not 16 <= len(key) <= 64:
            raise ValueError("the recovery-code key is 16 to 64 bytes")
        if not 1 <= count <= 100:
            raise ValueError("a set has 1 to 100 recovery codes")
        self._key = key
        self.count = count

    def generate(self) -> list[str]:
        """A fresh set of ``count`` distinct codes, to show the user once."""
        codes: dict[str, None] = {}
        while len(codes) < self.count:
            raw = "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))
            codes[f"{raw[:5]}-{raw[5:]}"] = None
        return list(codes)

    @staticmethod
    def normalise(code: str) -> str:
        """The form digests are taken of: lowercase, spaces and dashes removed (as a
        user may copy it, or type it in groups)."""
        return code.strip().lower().translate(_SEPARATORS)

    def looks_like(self, code: str) -> bool:
        """Whether ``code`` has a recovery code's shape (a TOTP code does not)."""
        return (
            isinstance(code, str)
            and len(code) <= 64
            and bool(_SHAPE.fullmatch(self.normalise(code)))
        )

    def digest(self, code: str) -> str:
        """The keyed digest stored for ``code`` (hex), the same for every way of
        writing it that :meth:`normalise` folds together."""
        return hmac.new(self._key, self.normalise(code).encode(), hashlib.sha256).hexdigest()

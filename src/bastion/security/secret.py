"""A secret value whose repr never shows it."""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["Secret"]


class Secret:
    """A key or password held so that it never leaks by accident: its ``repr`` and
    ``str`` show no part of it (a log line, a traceback or a debugger print), and it
    compares in constant time. :meth:`reveal` is the one way to the raw bytes."""

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes) -> None:
        raw = value.encode() if isinstance(value, str) else value
        if not raw:
            raise ValueError("a secret must not be empty")
        self._value = raw

    def reveal(self) -> bytes:
        return self._value

    @property
    def key_id(self) -> str:
        """A public name for the key: a hash prefix that reveals nothing of it."""
        return hashlib.sha256(b"bastion-kid:" + self._value).hexdigest()[:16]

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(other._value, self._value)

    def __hash__(self) -> int:
        return hash(self._value)

"""The store protocol the security layer is written against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Hit", "Store", "StoreUnavailable"]


class StoreUnavailable(Exception):
    """The store could not be reached; callers fail closed (503) or fall back."""


@dataclass(frozen=True, slots=True)
class Hit:
    """The outcome of one attempt to take a slot from a fixed-window budget.

    ``window`` identifies the window the slot was taken from, so that
    :meth:`Store.release` never gives a slot back to a later window.
    """

    allowed: bool
    count: int
    limit: int
    reset_after: float
    window: int
    flagged: bool = False

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)


class Store(Protocol):
    """Atomic counters and flags.

    Windows are fixed and start at the first hit of a key (as express-rate-limit's do),
    so a budget of ``limit`` per ``window`` seconds is never exceeded, however many
    workers or instances share the store.
    """

    async def hit(
        self, key: str, *, limit: int, window: float, check_flag: str | None = None
    ) -> Hit:
        """Take one slot if fewer than ``limit`` are taken; never counts a refused attempt.

        ``check_flag`` names a flag to look up in the same round trip (``Hit.flagged``).
        """
        ...

    async def peek(self, key: str, *, limit: int) -> Hit:
        """The budget as it stands, taking nothing."""
        ...

    async def release(self, key: str, *, window: int) -> None:
        """Give back one slot taken from ``window``; a no-op once that window has ended."""
        ...

    async def reset(self, key: str) -> None:
        """Forget the key's window entirely."""
        ...

    async def set_flag(self, key: str, *, ttl: float) -> None:
        """Raise a flag that disappears after ``ttl`` seconds."""
        ...

    async def has_flag(self, key: str) -> bool: ...

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the store answers."""
        ...

    async def aclose(self) -> None: ...

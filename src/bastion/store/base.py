"""The store protocol the security layer is written against."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bastion.security.exceptions import BastionError

__all__ = ["Budget", "Hit", "Store", "StoreUnavailable"]


class StoreUnavailable(BastionError):
    """The store could not be reached; callers fail closed (503) or fall back."""


@dataclass(frozen=True, slots=True)
class Budget:
    """At most ``limit`` slots per fixed window of ``window`` seconds under ``key``."""

    key: str
    limit: int
    window: float

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("a budget must allow at least 1 slot")
        if self.window <= 0:
            raise ValueError("a budget window must be positive")


@dataclass(frozen=True, slots=True)
class Hit:
    """One budget as an attempt to take a slot left it.

    ``allowed`` says whether this budget had room. ``window`` identifies the window the
    slot was taken from (its end, in the store's milliseconds), so that giving the slot
    back never credits a later window.
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

    Windows are fixed and start at the first slot taken under a key (as
    express-rate-limit's do), so a budget of ``limit`` per ``window`` seconds is never
    exceeded, however many workers or instances share the store.

    Key names are plain strings. A name that starts with a hash tag, ``{tag}rest``,
    shares a Redis Cluster slot with every other name of that tag; the operations that
    touch several keys at once (:meth:`take`, :meth:`give_back`) need all their keys in
    one tag. Every method raises :class:`StoreUnavailable` when the store cannot answer.
    """

    async def hit(
        self, key: str, *, limit: int, window: float, check_flag: str | None = None
    ) -> Hit:
        """Take one slot if fewer than ``limit`` are taken; a refusal takes nothing.

        ``check_flag`` names a flag to look up in the same round trip (``Hit.flagged``).
        """
        ...

    async def take(self, budgets: Sequence[Budget]) -> list[Hit]:
        """Take one slot from every budget, or from none if any of them is spent.

        One hit per budget, in order; the attempt succeeded when every hit is allowed.
        """
        ...

    async def give_back(
        self, *, release: Sequence[tuple[str, int]] = (), reset: Sequence[str] = ()
    ) -> None:
        """Give back one slot per ``(key, window)`` in ``release`` (a no-op once that
        window has ended) and forget every key in ``reset``, atomically."""
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
        """Raise a flag that disappears after ``ttl`` seconds, or later: a flag already
        up keeps its expiry when that is the later one (never shortened)."""
        ...

    async def has_flag(self, key: str) -> bool: ...

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the store answers."""
        ...

    async def aclose(self) -> None: ...

"""The in-process store: the embedded default, exact within one process."""

from __future__ import annotations

import time
from collections.abc import Callable

from bastion.store.base import Hit

__all__ = ["MemoryStore"]

_SWEEP_EVERY = 4096


class MemoryStore:
    """Dictionaries guarded by the event loop itself: no operation awaits mid-way."""

    __slots__ = ("_clock", "_flags", "_ops", "_windows")

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, list[float]] = {}  # key -> [count, ends_at]
        self._flags: dict[str, float] = {}  # key -> expires_at
        self._ops = 0

    def _sweep(self, now: float) -> None:
        self._ops += 1
        if self._ops % _SWEEP_EVERY:
            return
        self._windows = {k: v for k, v in self._windows.items() if v[1] > now}
        self._flags = {k: v for k, v in self._flags.items() if v > now}

    def _window(self, key: str, now: float) -> list[float] | None:
        entry = self._windows.get(key)
        if entry is not None and entry[1] <= now:
            del self._windows[key]
            return None
        return entry

    def _flag(self, key: str | None, now: float) -> bool:
        if key is None:
            return False
        expires = self._flags.get(key)
        return expires is not None and expires > now

    async def hit(
        self, key: str, *, limit: int, window: float, check_flag: str | None = None
    ) -> Hit:
        now = self._clock()
        self._sweep(now)
        entry = self._window(key, now)
        if entry is None:
            entry = self._windows[key] = [0, now + window]
        allowed = entry[0] < limit
        if allowed:
            entry[0] += 1
        return Hit(
            allowed=allowed,
            count=int(entry[0]),
            limit=limit,
            reset_after=entry[1] - now,
            window=int(entry[1] * 1000),
            flagged=self._flag(check_flag, now),
        )

    async def peek(self, key: str, *, limit: int) -> Hit:
        now = self._clock()
        entry = self._window(key, now)
        if entry is None:
            return Hit(allowed=True, count=0, limit=limit, reset_after=0.0, window=0)
        return Hit(
            allowed=entry[0] < limit,
            count=int(entry[0]),
            limit=limit,
            reset_after=entry[1] - now,
            window=int(entry[1] * 1000),
        )

    async def release(self, key: str, *, window: int) -> None:
        entry = self._window(key, self._clock())
        if entry is not None and int(entry[1] * 1000) == window and entry[0] > 0:
            entry[0] -= 1

    async def reset(self, key: str) -> None:
        self._windows.pop(key, None)

    async def set_flag(self, key: str, *, ttl: float) -> None:
        now = self._clock()
        self._flags[key] = max(self._flags.get(key, 0.0), now + ttl)

    async def has_flag(self, key: str) -> bool:
        return self._flag(key, self._clock())

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

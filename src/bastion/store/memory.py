"""The in-process store: the embedded default, exact within one process."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from bastion.store.base import Budget, Hit

__all__ = ["MemoryStore"]

# Expired entries removed per operation at most, so that a wave of expiries never
# stalls one request; anything left over goes on later calls (or when it is read).
_SWEEP_BATCH = 64


class MemoryStore:
    """Dictionaries guarded by the event loop itself: no operation awaits mid-way, so
    each one is atomic with respect to every other coroutine of the process."""

    __slots__ = ("_clock", "_expiries", "_flags", "_windows")

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, list[float]] = {}  # key -> [count, ends_at]
        self._flags: dict[str, float] = {}  # key -> expires_at
        # (expires_at, is_flag, key), popped as they expire: memory follows live keys only.
        self._expiries: list[tuple[float, bool, str]] = []

    def _sweep(self, now: float) -> None:
        heap = self._expiries
        for _ in range(_SWEEP_BATCH):
            if not heap or heap[0][0] > now:
                return
            _, is_flag, key = heapq.heappop(heap)
            # The key may have been set again since: only drop what has really expired.
            if is_flag:
                if self._flags.get(key, now + 1) <= now:
                    del self._flags[key]
            else:
                self._window(key, now)

    def _window(self, key: str, now: float) -> list[float] | None:
        entry = self._windows.get(key)
        if entry is not None and entry[1] <= now:
            del self._windows[key]
            return None
        return entry

    def _hit(self, entry: list[float], limit: int, now: float, allowed: bool) -> Hit:
        return Hit(
            allowed=allowed,
            count=int(entry[0]),
            limit=limit,
            # Rounded: (now + window) - now is not always window in floating point,
            # and a client told t=901 for a 900 s window would be told wrong.
            reset_after=round(entry[1] - now, 6),
            window=int(entry[1] * 1000),
        )

    def _take(self, budgets: Sequence[Budget], now: float) -> list[Hit]:
        self._sweep(now)
        entries = [self._window(b.key, now) or [0.0, now + b.window] for b in budgets]
        room = [e[0] < b.limit for e, b in zip(entries, budgets, strict=True)]
        if all(room):
            for entry, budget in zip(entries, budgets, strict=True):
                entry[0] += 1
                if budget.key not in self._windows:
                    self._windows[budget.key] = entry
                    heapq.heappush(self._expiries, (entry[1], False, budget.key))
        return [
            self._hit(e, b.limit, now, ok) for e, b, ok in zip(entries, budgets, room, strict=True)
        ]

    async def hit(
        self, key: str, *, limit: int, window: float, check_flag: str | None = None
    ) -> Hit:
        now = self._clock()
        (hit,) = self._take([Budget(key, limit, window)], now)
        if check_flag is not None and self._flag(check_flag, now):
            return replace(hit, flagged=True)
        return hit

    async def take(self, budgets: Sequence[Budget]) -> list[Hit]:
        return self._take(budgets, self._clock())

    async def give_back(
        self, *, release: Sequence[tuple[str, int]] = (), reset: Sequence[str] = ()
    ) -> None:
        now = self._clock()
        for key, window in release:
            entry = self._window(key, now)
            if entry is not None and int(entry[1] * 1000) == window and entry[0] > 0:
                entry[0] -= 1
        for key in reset:
            self._windows.pop(key, None)

    async def peek(self, key: str, *, limit: int) -> Hit:
        now = self._clock()
        entry = self._window(key, now)
        if entry is None:
            return Hit(allowed=True, count=0, limit=limit, reset_after=0.0, window=0)
        return self._hit(entry, limit, now, entry[0] < limit)

    async def release(self, key: str, *, window: int) -> None:
        await self.give_back(release=[(key, window)])

    async def reset(self, key: str) -> None:
        await self.give_back(reset=[key])

    def _flag(self, key: str, now: float) -> bool:
        expires = self._flags.get(key)
        return expires is not None and expires > now

    async def set_flag(self, key: str, *, ttl: float) -> None:
        now = self._clock()
        self._sweep(now)
        expires = max(self._flags.get(key, 0.0), now + ttl)
        self._flags[key] = expires
        heapq.heappush(self._expiries, (expires, True, key))

    async def has_flag(self, key: str) -> bool:
        return self._flag(key, self._clock())

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

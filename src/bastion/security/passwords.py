"""Password policy and Argon2id hashing that never blocks the event loop.

Hashing runs in a small thread pool (argon2-cffi releases the GIL), at most
``concurrency`` at a time with at most ``queue`` more waiting. Past that,
:meth:`PasswordHasher.verify` raises :class:`Unavailable` at once instead of piling up
work an attacker has sent.
"""

from __future__ import annotations

import asyncio
import secrets
import unicodedata
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, Protocol, TypeVar

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bastion.security.exceptions import InvalidCredentials, Unavailable

__all__ = ["Argon", "HasherConfig", "PasswordHasher", "password_problems"]

T = TypeVar("T")
MIN_LENGTH = 12
MAX_LENGTH = 128


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problems(password: str, *, context: tuple[str, ...] = ()) -> list[str]:
    """Why ``password`` is refused (empty when it is acceptable).

    12..128 characters (code points), and not a common password: zxcvbn's list of
    30,000 leaked passwords, or anything zxcvbn guesses in under a million tries (a
    common password with digits appended, a keyboard walk, a repeated word, the
    user's own email or name given in ``context``).
    """
    n = len(password)
    if n < MIN_LENGTH:
        return [f"must be at least {MIN_LENGTH} characters"]
    if n > MAX_LENGTH:
        return [f"must be at most {MAX_LENGTH} characters"]
    if password.lower() in _common():
        return ["is a commonly used password"]
    from zxcvbn import zxcvbn

    # zxcvbn refuses more than 72 characters; a weak prefix is weak enough to refuse.
    result = zxcvbn(password[:72], user_inputs=[c for c in context if c])
    if result["guesses"] < 1_000_000:
        return ["is too easy to guess (a common password or a simple pattern)"]
    return []


def normalise_password(password: str) -> str:
    """NFKC, so that the same password typed on two keyboards hashes the same."""
    return unicodedata.normalize("NFKC", password)


@dataclass(frozen=True, slots=True)
class HasherConfig:
    memory_kib: int = 19456
    time_cost: int = 2
    parallelism: int = 1
    concurrency: int = 1
    queue: int = 16

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.queue < 0:
            raise ValueError("queue must not be negative")


class Argon(Protocol):
    """What :class:`PasswordHasher` needs of ``argon2.PasswordHasher`` (a seam for tests)."""

    def hash(self, password: str) -> str: ...
    def verify(self, hash: str, password: str) -> bool: ...
    def check_needs_rehash(self, hash: str) -> bool: ...


class PasswordHasher:
    """Argon2id with bounded concurrency; :meth:`verify` raises, never returns False.

    At most ``concurrency`` hashes run at once, each on a thread of its own, and at most
    ``queue`` more wait; past that, :class:`Unavailable` is raised at once. The waiting
    line is not first come, first served: ``trusted`` attempts (a login that carries a
    valid device cookie) go ahead of untrusted ones, and when the line is full the
    newest untrusted waiter is shed (503) to make room for a trusted arrival. A flood
    of guesses spread over many IPs and accounts therefore delays a returning user by
    at most the hashes already running.
    """

    def __init__(
        self, config: HasherConfig = HasherConfig(), *, argon: Argon | None = None
    ) -> None:
        self.config = config
        self._argon: Argon = argon or argon2.PasswordHasher(
            memory_cost=config.memory_kib,
            time_cost=config.time_cost,
            parallelism=config.parallelism,
            type=argon2.Type.ID,
        )
        self._pool = ThreadPoolExecutor(config.concurrency, thread_name_prefix="argon2")
        self._running = 0
        self._trusted: deque[asyncio.Future[None]] = deque()
        self._untrusted: deque[asyncio.Future[None]] = deque()
        self._dummy: str | None = None

    @property
    def running(self) -> int:
        """Hashes running now (each holds one of ``concurrency`` slots)."""
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._trusted) + len(self._untrusted)

    def refuses(self, *, trusted: bool = False) -> bool:
        """Whether an attempt arriving now would be refused (:class:`Unavailable`).

        Lets a caller refuse before it spends anything else on the attempt (a store
        round trip, a database lookup): under a flood that saturates the pool, those
        cost more CPU than the refusal itself and slow down the attempts let through."""
        if self._running < self.config.concurrency and not self.waiting:
            return False
        return self.waiting >= self.config.queue and (not trusted or not self._untrusted)

    async def _acquire(self, trusted: bool) -> None:
        if self._running < self.config.concurrency and not self.waiting:
            self._running += 1
            return
        if self.refuses(trusted=trusted):
            raise Unavailable("password hasher saturated", retry_after=1)
        if self.waiting >= self.config.queue:
            shed = self._untrusted.pop()  # the newest untrusted waiter makes room
            if not shed.done():
                shed.set_exception(Unavailable("shed for a trusted attempt", retry_after=1))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line = self._trusted if trusted else self._untrusted
        line.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # the slot was handed over just as we were cancelled
            elif future in line:
                line.remove(future)
            raise

    def _release(self) -> None:
        for line in (self._trusted, self._untrusted):
            while line:
                future = line.popleft()
                if not future.done():
                    future.set_result(None)  # the slot passes straight to this waiter
                    return
        self._running -= 1

    def _finished(self, future: asyncio.Future[Any]) -> None:
        self._release()
        if not future.cancelled():
            future.exception()  # retrieved here if the caller went away

    async def _run(self, fn: Callable[..., T], *args: str, trusted: bool = False) -> T:
        await self._acquire(trusted)
        try:
            job = asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except BaseException:
            self._release()
            raise
        # The slot is held until the thread is done, even if the caller is cancelled:
        # otherwise cancelled callers would let more hashes run than there are slots.
        job.add_done_callback(self._finished)
        return await asyncio.shield(job)

    async def hash(self, password: str) -> str:
        return await self._run(self._argon.hash, normalise_password(password))

    async def problems(self, password: str, *, context: tuple[str, ...] = ()) -> list[str]:
        """:func:`password_problems`, in the pool like a hash: zxcvbn is pure Python and
        takes up to ~90 ms on a long password, which would stall the event loop. Raises
        :class:`Unavailable` when the pool is saturated, like a hash."""
        if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
            return password_problems(password)  # length alone: nothing to compute
        return await self._run(partial(password_problems, context=context), password)

    async def verify(
        self, stored_hash: str | None, password: str, *, trusted: bool = False
    ) -> bool:
        """Raise :class:`InvalidCredentials` unless ``password`` matches, or
        :class:`Unavailable` when the hasher is saturated.

        ``stored_hash=None`` (an unknown account) verifies against a dummy hash, so the
        answer takes the same time. Returns whether the hash should be upgraded to the
        current parameters.
        """
        if stored_hash is None:
            stored_hash = await self._dummy_hash()
            await self._run(self._check, stored_hash, normalise_password(password), trusted=trusted)
            raise InvalidCredentials("unknown account")
        ok = await self._run(
            self._check, stored_hash, normalise_password(password), trusted=trusted
        )
        if not ok:
            raise InvalidCredentials("wrong password")
        return self._argon.check_needs_rehash(stored_hash)

    def _check(self, stored_hash: str, password: str) -> bool:
        try:
            return self._argon.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(24))
        return self._dummy

    async def warm_up(self) -> None:
        """Compute the dummy hash now, rather than on a first login."""
        await self._dummy_hash()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

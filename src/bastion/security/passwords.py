"""Password policy and Argon2id hashing that never blocks the event loop.

Hashing runs in small thread pools (argon2-cffi releases the GIL), at most
``concurrency`` at a time for each class of attempt (trusted, untrusted) with at most
``queue`` more holding a place in line. Past that, :meth:`PasswordHasher.admit` and
:meth:`PasswordHasher.verify` raise :class:`Unavailable` at once instead of piling up
work an attacker has sent; a place that waits longer than ``max_wait`` for its hash to
start gets :class:`Unavailable` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
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
from bastion.security.password_context import without_context

__all__ = [
    "BACKGROUND_NICE",
    "RETRY_AFTER",
    "Argon",
    "HasherConfig",
    "PasswordHasher",
    "Place",
    "password_problems",
]

T = TypeVar("T")
MIN_LENGTH = 12
RETRY_AFTER = 1  # seconds, on a refusal: a place in line frees up within a hash or two
# The nice value of untrusted hashing threads: against a busy event loop (nice 0) they
# get about a tenth of a core, and all of whatever the service leaves idle.
BACKGROUND_NICE = 10
MAX_LENGTH = 128
# What must be left of a password once the context words are out: ASVS's own minimum.
MIN_CONTEXT_FREE = 8


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problems(password: str, *, context: tuple[str, ...] = ()) -> list[str]:
    """Why ``password`` is refused (empty when it is acceptable).

    12..128 characters (code points), and not a common password: zxcvbn's list of
    30,000 leaked passwords, or anything zxcvbn guesses in under a million tries (a
    common password with digits appended, a keyboard walk, a repeated word, the
    user's own email or name given in ``context``); nor one that leans on the words of
    ``context`` (the service's name, the user's email or name): once they are taken out
    (:func:`~bastion.security.password_context.without_context`), what is left must
    still be 8 characters long and pass the same strength check.
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
    rest = without_context(password, context)
    if rest is not None and (
        len(rest) < MIN_CONTEXT_FREE
        or rest.lower() in _common()
        or zxcvbn(rest[:72])["guesses"] < 1_000_000
    ):
        return ["is too easy to guess from the name of this service, your email or your name"]
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
    # Seconds a place may wait in line for its hash to start (the hash itself, once
    # started, runs to its end: a thread cannot be interrupted).
    max_wait: float = 5.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.queue < 0:
            raise ValueError("queue must not be negative")
        if not self.max_wait > 0:
            raise ValueError("max_wait must be positive")


class Argon(Protocol):
    """What :class:`PasswordHasher` needs of ``argon2.PasswordHasher`` (a seam for tests)."""

    def hash(self, password: str) -> str: ...
    def verify(self, hash: str, password: str) -> bool: ...
    def check_needs_rehash(self, hash: str) -> bool: ...


class Place:
    """A place in the hasher's line, held from the moment an attempt is admitted until
    its job starts (or the attempt ends without one: :meth:`leave`, or ``with``).

    An attempt does store and database work before it has anything to hash. Were it to
    join the line only then, every attempt admitted during those round trips would find
    the line full when it got there, having cost them already; a place taken at
    admission keeps the bound exact from the start."""

    __slots__ = ("_hasher", "evicted", "started", "trusted", "waiter")

    def __init__(self, hasher: PasswordHasher, trusted: bool) -> None:
        self._hasher = hasher
        self.trusted = trusted
        self.waiter: asyncio.Future[None] | None = None  # set once its job is ready
        self.evicted = False  # shed to make room for a trusted attempt
        self.started = False

    def leave(self) -> None:
        """Give the place up (nothing when its job has started or it was shed)."""
        self._hasher._leave(self)

    def __enter__(self) -> Place:
        return self

    def __exit__(self, *exc: object) -> None:
        self.leave()


def _lower_priority() -> None:
    """Run this (pool) thread :data:`BACKGROUND_NICE` steps below the process: Linux
    schedules threads by their own nice value, and raising it needs no privilege.
    Elsewhere, nothing changes."""
    with contextlib.suppress(AttributeError, OSError):
        thread = threading.get_native_id()
        own = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(own + BACKGROUND_NICE, 19))


class PasswordHasher:
    """Argon2id with bounded concurrency; :meth:`verify` raises, never returns False.

    Attempts come in two classes. ``trusted`` ones (a login that carries a valid device
    cookie) and untrusted ones each run at most ``concurrency`` hashes at once, on
    threads of their own, and together hold at most ``queue`` places in line
    (:meth:`admit`) beyond the free slots; past that, :class:`Unavailable` is raised at
    once. A trusted attempt never waits for an untrusted hash: it has slots of its own,
    and when the line is full the newest untrusted place is shed (503) to make room for
    it. Untrusted hashes also run at a lower CPU priority (:data:`BACKGROUND_NICE`):
    queue order alone cannot stop an untrusted hash that is already running from taking
    its share of a core away from the event loop and from a returning user's hash. A
    flood of guesses spread over many IPs and accounts therefore barely delays a
    returning user, and gets the CPU that serving everyone else leaves idle.
    """

    retry_after = RETRY_AFTER  # seconds a refused attempt is told to wait

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
        self._pools = self._new_pools()
        self._closed = False
        self._running = {True: 0, False: 0}
        self._lines: dict[bool, deque[Place]] = {True: deque(), False: deque()}
        self._dummy: str | None = None

    def _new_pools(self) -> dict[bool, ThreadPoolExecutor]:
        # Executors start their threads on first use: a new pair costs nothing yet.
        return {
            True: ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="argon2"),
            False: ThreadPoolExecutor(
                self.config.concurrency,
                thread_name_prefix="argon2-untrusted",
                initializer=_lower_priority,
            ),
        }

    @property
    def running(self) -> int:
        """Hashes running now (each holds a slot of its class)."""
        return self._running[True] + self._running[False]

    @property
    def waiting(self) -> int:
        """Places held in line: admitted attempts whose job has not started."""
        return len(self._lines[True]) + len(self._lines[False])

    def refuses(self, *, trusted: bool = False) -> bool:
        """Whether an attempt arriving now would be refused (:class:`Unavailable`).

        Lets a caller refuse before it spends anything else on the attempt (a store
        round trip, a database lookup): under a flood that saturates the pool, those
        cost more CPU than the refusal itself and slow down the attempts let through."""
        if self.waiting < self._room(trusted):
            return False
        return not trusted or not self._lines[False]

    def _room(self, trusted: bool) -> int:
        """Places the line holds now for an arrival: ``queue``, and one for each free
        slot of its class."""
        return self.config.queue + self.config.concurrency - self._running[trusted]

    def admit(self, *, trusted: bool = False) -> Place:
        """A place in line for one job, or :class:`Unavailable` at once when the line is
        full (a trusted arrival takes the newest untrusted place instead)."""
        if self.refuses(trusted=trusted):
            raise Unavailable("password hasher saturated", retry_after=RETRY_AFTER)
        if self.waiting >= self._room(trusted):
            shed = self._lines[False].pop()  # the newest untrusted place makes room
            shed.evicted = True
            if shed.waiter is not None and not shed.waiter.done():
                shed.waiter.set_exception(
                    Unavailable("shed for a trusted attempt", retry_after=RETRY_AFTER)
                )
        place = Place(self, trusted)
        self._lines[trusted].append(place)
        return place

    def _leave(self, place: Place) -> None:
        line = self._lines[place.trusted]
        if not place.started and not place.evicted and place in line:
            line.remove(place)

    async def _start(self, place: Place) -> None:
        """Wait for a slot of its class to run ``place``'s job in."""
        if place.evicted:
            raise Unavailable("shed for a trusted attempt", retry_after=RETRY_AFTER)
        if place.started:
            raise RuntimeError("a place holds one job")
        if self._running[place.trusted] < self.config.concurrency:
            # A free slot means nobody ready is waiting for one (a release hands its
            # slot to the first ready place of the class): run now.
            self._leave(place)
            place.started = True
            self._running[place.trusted] += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        place.waiter = future
        try:
            async with asyncio.timeout(self.config.max_wait):
                try:
                    await future
                except asyncio.CancelledError:  # by the caller, or by the timeout
                    if future.done() and not future.cancelled():
                        self._release(place.trusted)  # handed the slot as it was cancelled
                    else:
                        self._leave(place)
                    raise
        except TimeoutError:
            # Hashes are not finishing (the untrusted threads, at a low priority, get
            # no CPU under load; or the line is long): the attempt is not judged, and
            # its client is told when to try again rather than kept waiting.
            raise Unavailable("waited too long for the hasher", retry_after=RETRY_AFTER) from None

    def _release(self, trusted: bool) -> None:
        line = self._lines[trusted]
        for place in line:
            if place.waiter is not None and not place.waiter.done():
                line.remove(place)
                place.started = True
                place.waiter.set_result(None)  # the slot passes straight to it
                return
        self._running[trusted] -= 1

    async def _run(
        self, fn: Callable[..., T], *args: str, trusted: bool = False, place: Place | None = None
    ) -> T:
        with place or self.admit(trusted=trusted) as held:
            await self._start(held)
        try:
            job = asyncio.get_running_loop().run_in_executor(self._pools[held.trusted], fn, *args)
        except BaseException:
            self._release(held.trusted)
            raise

        def finished(future: asyncio.Future[Any]) -> None:
            self._release(held.trusted)
            if not future.cancelled():
                future.exception()  # retrieved here if the caller went away

        # The slot is held until the thread is done, even if the caller is cancelled:
        # otherwise cancelled callers would let more hashes run than there are slots.
        job.add_done_callback(finished)
        return await asyncio.shield(job)

    async def hash(self, password: str) -> str:
        return await self._run(self._argon.hash, normalise_password(password))

    async def problems(
        self, password: str, *, context: tuple[str, ...] = (), place: Place | None = None
    ) -> list[str]:
        """:func:`password_problems`, in the pool like a hash: zxcvbn is pure Python and
        takes up to ~90 ms on a long password, which would stall the event loop. Raises
        :class:`Unavailable` when the pool is saturated, like a hash."""
        if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
            return password_problems(password)  # length alone: nothing to compute
        return await self._run(partial(password_problems, context=context), password, place=place)

    async def verify(
        self,
        stored_hash: str | None,
        password: str,
        *,
        trusted: bool = False,
        place: Place | None = None,
    ) -> None:
        """Return when ``password`` matches; raise :class:`InvalidCredentials` when it
        does not (or the account is unknown), :class:`Unavailable` when the hasher is
        saturated. Never a boolean to forget to check.

        ``stored_hash=None`` (an unknown account) verifies against a dummy hash, so the
        answer takes the same time. Whether the hash should be upgraded is
        :meth:`needs_rehash`. ``place``: the one :meth:`admit` gave this attempt (else
        it takes one now).
        """
        if stored_hash is None:
            stored_hash = await self._dummy_hash()
            await self._run(
                self._check, stored_hash, normalise_password(password), trusted=trusted, place=place
            )
            raise InvalidCredentials("unknown account")
        ok = await self._run(
            self._check, stored_hash, normalise_password(password), trusted=trusted, place=place
        )
        if not ok:
            raise InvalidCredentials("wrong password")

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether ``stored_hash`` was made with parameters weaker than the current
        ones (so that a verified password should be hashed again and stored)."""
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
        """Open the hasher (again, after :meth:`close`) and compute the dummy hash now,
        rather than on a first login."""
        if self._closed:
            self._pools = self._new_pools()
            self._closed = False
        await self._dummy_hash()

    def close(self) -> None:
        """Stop the threads (jobs not started are cancelled); :meth:`warm_up` opens
        the hasher again."""
        self._closed = True
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

"""Password hashing under attack: bounded concurrency, a bounded line that trusted
attempts jump, shedding instead of piling up, and no slot leaked by cancellation. Logins
that fill it over HTTP are in tests/attacks/test_api4_resource_consumption.py."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import pytest
from argon2.exceptions import VerifyMismatchError

from bastion.security.exceptions import InvalidCredentials, Unavailable
from bastion.security.passwords import BACKGROUND_NICE, HasherConfig, PasswordHasher
from tests.conftest import PASSWORD
from tests.security.conftest import wait_until


class SlowArgon:
    """A fake Argon2: each ``verify`` blocks its thread until the test releases it, and
    records how many run at once and in which order they started."""

    def __init__(self) -> None:
        self.release = threading.Semaphore(0)
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.started: list[str] = []

    def hash(self, password: str) -> str:
        return f"fake${password}"

    def verify(self, hash: str, password: str) -> bool:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.started.append(password)
        try:
            if not self.release.acquire(timeout=30):
                raise RuntimeError("never released")
        finally:
            with self.lock:
                self.active -= 1
        if hash != f"fake${password}":
            raise VerifyMismatchError
        return True

    def check_needs_rehash(self, hash: str) -> bool:
        return False


@pytest.fixture
def argon() -> SlowArgon:
    return SlowArgon()


@pytest.fixture
def make_hasher(argon: SlowArgon) -> Any:
    made: list[PasswordHasher] = []

    def make(concurrency: int, queue: int, max_wait: float = 30.0) -> PasswordHasher:
        config = HasherConfig(concurrency=concurrency, queue=queue, max_wait=max_wait)
        hasher = PasswordHasher(config, argon=argon)
        made.append(hasher)
        return hasher

    yield make
    for _ in range(64):
        argon.release.release()
    for hasher in made:
        hasher.close()


def verify(hasher: PasswordHasher, name: str, *, trusted: bool = False) -> asyncio.Task[None]:
    return asyncio.create_task(hasher.verify(f"fake${name}", name, trusted=trusted))


async def test_at_most_concurrency_hashes_run_at_once(argon: SlowArgon, make_hasher: Any) -> None:
    hasher = make_hasher(concurrency=3, queue=20)
    tasks = [verify(hasher, f"p{i}") for i in range(12)]
    await wait_until(lambda: argon.active == 3 and hasher.waiting == 9, "3 running, 9 waiting")
    for _ in range(12):
        argon.release.release()
    await asyncio.gather(*tasks)
    assert argon.peak == 3
    assert hasher.running == 0


async def test_past_concurrency_and_queue_an_attempt_is_refused_at_once(
    argon: SlowArgon, make_hasher: Any
) -> None:
    hasher = make_hasher(concurrency=2, queue=3)
    tasks = [verify(hasher, f"p{i}") for i in range(5)]
    await wait_until(lambda: hasher.running == 2 and hasher.waiting == 3, "line full")
    with pytest.raises(Unavailable):
        await hasher.verify("fake$x", "x")
    assert argon.started == ["p0", "p1"]
    for _ in range(5):
        argon.release.release()
    assert await asyncio.gather(*tasks) == [None] * 5  # each verified (none raised)


async def test_a_trusted_attempt_never_waits_for_untrusted_hashes(
    argon: SlowArgon, make_hasher: Any
) -> None:
    """Untrusted hashes fill every slot and the line; a returning user's check starts at
    once on a slot of its own class, and the next trusted one waits only for it."""
    hasher = make_hasher(concurrency=1, queue=10)
    first = verify(hasher, "running")
    await wait_until(lambda: argon.active == 1, "first hash running")
    untrusted = [verify(hasher, f"u{i}") for i in range(3)]
    await wait_until(lambda: hasher.waiting == 3, "3 untrusted waiting")
    trusted = [verify(hasher, f"t{i}", trusted=True) for i in range(2)]
    await wait_until(lambda: argon.active == 2 and hasher.waiting == 4, "t0 runs beside")
    assert argon.started == ["running", "t0"]
    for _ in range(6):
        argon.release.release()
    await asyncio.gather(first, *untrusted, *trusted)
    assert argon.peak == 2  # one slot of each class, never more
    assert argon.started[2:].index("u0") < argon.started[2:].index("u1")


async def test_a_trusted_arrival_on_a_full_line_sheds_the_newest_untrusted_waiter(
    argon: SlowArgon, make_hasher: Any
) -> None:
    hasher = make_hasher(concurrency=1, queue=3)
    running = [verify(hasher, "running"), verify(hasher, "t-running", trusted=True)]
    await wait_until(lambda: argon.active == 2, "a hash of each class running")
    untrusted = [verify(hasher, f"u{i}") for i in range(3)]
    await wait_until(lambda: hasher.waiting == 3, "line full")
    # An untrusted arrival on the full line is refused; a trusted one takes a place.
    with pytest.raises(Unavailable):
        await hasher.verify("fake$late", "late")
    returning = verify(hasher, "returning", trusted=True)
    with pytest.raises(Unavailable):
        await untrusted[2]
    for _ in range(5):
        argon.release.release()
    await asyncio.gather(*running, untrusted[0], untrusted[1], returning)
    assert sorted(argon.started[2:]) == ["returning", "u0", "u1"]


async def test_places_are_taken_at_admission_not_when_the_hash_is_due(
    argon: SlowArgon, make_hasher: Any
) -> None:
    """Attempts admitted while they still do their store and database work hold their
    places: the line is full before any of them has started a hash."""
    hasher = make_hasher(concurrency=1, queue=2)
    places = [hasher.admit() for _ in range(3)]  # the free slot and two places
    assert hasher.running == 0
    assert hasher.waiting == 3
    assert hasher.refuses()
    with pytest.raises(Unavailable):
        hasher.admit()
    places[0].leave()  # that attempt ended (refused by a limit, say) without a hash
    assert not hasher.refuses()
    with places[1] as place:
        job = asyncio.create_task(hasher.verify("fake$a", "a", place=place))
        await wait_until(lambda: argon.active == 1, "its job runs")
    argon.release.release()
    assert await job is None  # verified: it raised nothing
    places[2].leave()
    assert hasher.running == 0
    assert hasher.waiting == 0


class PriorityArgon(SlowArgon):
    """Records the nice value of the thread each check runs on."""

    def __init__(self) -> None:
        super().__init__()
        self.nice: dict[str, int] = {}

    def verify(self, hash: str, password: str) -> bool:
        self.nice[password] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        return hash == f"fake${password}"


async def test_untrusted_hashes_run_at_a_lower_cpu_priority() -> None:
    """Attacker: floods untrusted guesses so that their hashes take half the core from
    the event loop and from a returning user's hash. Defence: untrusted hashing threads
    run at BACKGROUND_NICE; trusted ones at the process's own priority."""
    argon = PriorityArgon()
    hasher = PasswordHasher(HasherConfig(concurrency=1, queue=1), argon=argon)
    try:
        await hasher.verify("fake$guess", "guess")
        await hasher.verify("fake$returning", "returning", trusted=True)
    finally:
        hasher.close()
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert argon.nice == {"guess": min(own + BACKGROUND_NICE, 19), "returning": own}


async def test_a_full_line_of_trusted_waiters_refuses_even_trusted_arrivals(
    argon: SlowArgon, make_hasher: Any
) -> None:
    hasher = make_hasher(concurrency=1, queue=2)
    tasks = [verify(hasher, f"t{i}", trusted=True) for i in range(3)]
    await wait_until(lambda: hasher.waiting == 2, "line full")
    with pytest.raises(Unavailable):
        await hasher.verify("fake$x", "x", trusted=True)
    for _ in range(3):
        argon.release.release()
    await asyncio.gather(*tasks)


async def test_cancelled_waiters_do_not_leak_slots(argon: SlowArgon, make_hasher: Any) -> None:
    hasher = make_hasher(concurrency=1, queue=5)
    first = verify(hasher, "running")
    await wait_until(lambda: argon.active == 1, "first hash running")
    waiters = [verify(hasher, f"w{i}") for i in range(5)]
    await wait_until(lambda: hasher.waiting == 5, "5 waiting")
    for task in waiters:
        task.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert hasher.waiting == 0
    argon.release.release()
    await first
    assert hasher.running == 0
    # The whole capacity is there again: one running and five waiting, none refused.
    again = [verify(hasher, f"a{i}") for i in range(6)]
    await wait_until(lambda: hasher.running == 1 and hasher.waiting == 5, "capacity restored")
    for _ in range(6):
        argon.release.release()
    await asyncio.gather(*again)
    assert hasher.running == 0


@pytest.mark.parametrize("trusted", [False, True], ids=["untrusted", "trusted"])
async def test_a_place_that_waits_past_max_wait_is_refused_and_leaves_the_line(
    argon: SlowArgon, make_hasher: Any, trusted: bool
) -> None:
    """Attacker: keeps the hashes running (or starved of CPU) so that every guess behind
    them waits as long as they last. Defence: no wait in line outlasts ``max_wait``;
    the place is given up, and the slot goes to whoever comes next."""
    hasher = make_hasher(concurrency=1, queue=2, max_wait=0.2)
    running = verify(hasher, "running", trusted=trusted)
    await wait_until(lambda: argon.active == 1, "a hash running")
    waiter = verify(hasher, "waiter", trusted=trusted)
    await wait_until(lambda: hasher.waiting == 1, "one waiting")
    with pytest.raises(Unavailable) as refused:
        await asyncio.wait_for(waiter, timeout=10)
    assert refused.value.retry_after >= 1
    assert (hasher.waiting, hasher.running) == (0, 1)
    assert argon.started == ["running"]
    argon.release.release()
    await running
    assert hasher.running == 0
    nxt = verify(hasher, "next", trusted=trusted)
    await wait_until(lambda: argon.active == 1, "the next hash starts at once")
    argon.release.release()
    assert await nxt is None  # verified: it raised nothing
    assert argon.started == ["running", "next"]


def test_max_wait_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_wait"):
        HasherConfig(max_wait=0)


async def test_a_closed_hasher_opens_again_on_warm_up(argon: SlowArgon) -> None:
    hasher = PasswordHasher(HasherConfig(concurrency=1, queue=1), argon=argon)
    await hasher.warm_up()
    hasher.close()
    await hasher.warm_up()  # as at the next start of the app
    try:
        argon.release.release()
        assert await hasher.verify("fake$again", "again") is None
        assert hasher.needs_rehash("fake$again") is False
    finally:
        hasher.close()


async def test_a_cancelled_caller_holds_its_slot_until_its_hash_is_done(
    argon: SlowArgon, make_hasher: Any
) -> None:
    hasher = make_hasher(concurrency=1, queue=1)
    running = verify(hasher, "running")
    await wait_until(lambda: argon.active == 1, "hash running")
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    # The thread still hashes: no new hash may start beside it.
    queued = verify(hasher, "next")
    await wait_until(lambda: hasher.waiting == 1, "next waits")
    assert argon.active == 1
    argon.release.release()
    await wait_until(lambda: argon.started == ["running", "next"], "next starts after")
    argon.release.release()
    assert await queued is None
    assert argon.peak == 1


async def test_an_unknown_account_costs_one_verification_and_fails(
    argon: SlowArgon, make_hasher: Any
) -> None:
    hasher = make_hasher(concurrency=1, queue=1)
    argon.release.release()
    with pytest.raises(InvalidCredentials):
        await hasher.verify(None, PASSWORD)
    assert len(argon.started) == 1

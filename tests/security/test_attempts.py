"""The attempt guard as an async context manager, on both store backends: it reserves
on entry and settles itself on exit. Each test attacks one rule of the settlement: 50
concurrent wrong guesses never get past the budget, a success gives its slots back, an
attempt never judged (an exception) gives them back, ``fail()`` keeps them, a refused
attempt takes nothing, and the observer hears each outcome once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bastion.security import (
    Attempt,
    AttemptGuard,
    AttemptRefused,
    GuardConfig,
    InvalidCredentials,
    MemoryStore,
    Rate,
    RedisStore,
    Store,
)
from tests.conftest import flush_redis

IP = "198.51.100.20"
ACCOUNT = "victim@example.com"


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, shared_redis_url: str) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    await flush_redis(shared_redis_url)
    redis_store = RedisStore.from_url(shared_redis_url)
    yield redis_store
    await redis_store.aclose()


class Heard:
    """An observer that records what it was told, in order."""

    def __init__(self) -> None:
        self.told: list[tuple[str, str]] = []

    def refused(self, attempt: Attempt, exc: AttemptRefused) -> None:
        self.told.append(("refused", exc.reason))

    def failed(self, attempt: Attempt, reason: str) -> None:
        self.told.append(("failed", f"{reason}{' (locked)' if attempt.locked else ''}"))

    def succeeded(self, attempt: Attempt) -> None:
        self.told.append(("succeeded", "judged" if attempt.judged else "not judged"))


def guard_on(store: Store, *, per_ip: int = 10, per_account: int = 5) -> AttemptGuard:
    config = GuardConfig(per_ip=Rate(per_ip, 900), per_account=Rate(per_account, 900), key=b"k")
    return AttemptGuard(store, config, observer=Heard())


def heard(guard: AttemptGuard) -> list[tuple[str, str]]:
    assert isinstance(guard.observer, Heard)
    return guard.observer.told


async def wrong_guess(guard: AttemptGuard, account: str = ACCOUNT) -> str:
    """One attempt whose password is wrong: ``failed``, or ``refused`` by a budget."""
    try:
        async with guard.attempt(ip=IP, account=account):
            await asyncio.sleep(0)  # the hash, as far as the guard can tell
            raise InvalidCredentials("wrong password")
    except AttemptRefused:
        return "refused"
    except InvalidCredentials:
        return "failed"
    raise AssertionError("the attempt neither failed nor was refused")


async def test_fifty_concurrent_wrong_guesses_never_exceed_the_budget(store: Store) -> None:
    guard = guard_on(store, per_ip=10, per_account=10**6)
    outcomes = await asyncio.gather(*(wrong_guess(guard, f"u{n}@example.com") for n in range(50)))
    assert outcomes.count("failed") == 10
    assert outcomes.count("refused") == 40


async def test_fifty_concurrent_guesses_at_one_account_never_exceed_its_lockout(
    store: Store,
) -> None:
    guard = guard_on(store, per_ip=10**6, per_account=5)
    outcomes = await asyncio.gather(*(wrong_guess(guard) for _ in range(50)))
    assert outcomes.count("failed") == 5
    assert sum(1 for what, why in heard(guard) if what == "failed" and "locked" in why) == 1
    assert await guard.locked_until(ACCOUNT) is not None


async def test_a_success_gives_its_slots_back(store: Store) -> None:
    guard = guard_on(store, per_ip=3, per_account=3)
    for _ in range(10):  # far more successes than either budget
        async with guard.attempt(ip=IP, account=ACCOUNT) as attempt:
            assert attempt.reservation.ip_hit is not None
    assert [await wrong_guess(guard) for _ in range(4)] == ["failed"] * 3 + ["refused"]
    assert heard(guard)[0] == ("succeeded", "judged")


async def test_succeed_gives_the_slots_back_once_beside_the_callers_next_work(
    store: Store,
) -> None:
    guard = guard_on(store, per_ip=3, per_account=3)
    for _ in range(10):  # far more successes than either budget
        async with guard.attempt(ip=IP, account=ACCOUNT) as attempt:
            given_back = attempt.succeed()
            assert attempt.succeed() is given_back  # judged once, settled once
        await given_back
    assert heard(guard) == [("succeeded", "judged")] * 10
    assert [await wrong_guess(guard) for _ in range(4)] == ["failed"] * 3 + ["refused"]


async def test_an_attempt_never_judged_gives_its_slots_back(store: Store) -> None:
    guard = guard_on(store, per_ip=2, per_account=2)
    for _ in range(5):
        with pytest.raises(RuntimeError):
            async with guard.attempt(ip=IP, account=ACCOUNT):
                raise RuntimeError("the database went away before the password was checked")
    assert heard(guard) == [("succeeded", "not judged")] * 5
    assert [await wrong_guess(guard) for _ in range(3)] == ["failed", "failed", "refused"]


async def test_fail_keeps_the_slots_without_an_exception(store: Store) -> None:
    guard = guard_on(store, per_ip=2, per_account=10)
    for _ in range(2):
        async with guard.attempt(ip=IP) as attempt:  # a registration: no account
            attempt.fail("weak password")
    with pytest.raises(AttemptRefused) as refused:
        async with guard.attempt(ip=IP):
            pass
    assert refused.value.reason == "auth limit"
    assert heard(guard) == [("failed", "weak password")] * 2 + [("refused", "auth limit")]


async def test_fail_then_an_exception_is_still_a_failure(store: Store) -> None:
    guard = guard_on(store, per_ip=1, per_account=10)

    async def register_taken_email() -> None:
        async with guard.attempt(ip=IP) as attempt:
            attempt.fail("email taken")
            raise ValueError("email taken")

    with pytest.raises(ValueError, match="taken"):
        await register_taken_email()
    assert await wrong_guess(guard) == "refused"


async def test_a_refused_attempt_takes_nothing_and_never_runs(store: Store) -> None:
    guard = guard_on(store, per_ip=10, per_account=1)
    assert await wrong_guess(guard) == "failed"  # the account is locked now
    ran = False
    for _ in range(20):
        with pytest.raises(AttemptRefused) as refused:
            async with guard.attempt(ip=IP, account=ACCOUNT):
                ran = True
        assert refused.value.reason == "account locked"
    assert not ran
    # The refusals spent none of the address's budget: 9 failures are left on it.
    others = [await wrong_guess(guard, f"o{n}@example.com") for n in range(10)]
    assert others == ["failed"] * 9 + ["refused"]


async def test_a_device_cookie_is_charged_alone(store: Store) -> None:
    guard = guard_on(store, per_ip=10, per_account=1)
    assert await wrong_guess(guard) == "failed"  # the account is locked for everyone else
    async with guard.attempt(ip=IP, account=ACCOUNT, device="dev-1") as attempt:
        assert attempt.reservation.ip_hit is None
    assert heard(guard)[-1] == ("succeeded", "judged")

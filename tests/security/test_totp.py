"""TotpVerifier: RFC 6238 codes within the window, each step usable once per user on
every instance sharing the store (memory and Redis), and every refusal the same error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest

from bastion.security import InvalidCode, Store, TotpConfig, TotpVerifier
from bastion.store import StoreUnavailable
from bastion.store.redis import RedisStore

KEY = b"totp-replay-key-for-tests-32byte"
CONFIG = TotpConfig(issuer="Bastion")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def verifier(store: Store, clock: Callable[[], float] = time.time) -> TotpVerifier:
    return TotpVerifier(store, CONFIG, key=KEY, clock=clock)


def code_for(secret: str, when: float) -> str:
    return pyotp.TOTP(secret).at(when)


def test_a_new_secret_is_160_random_bits_of_base32() -> None:
    from bastion.store import MemoryStore

    v = verifier(MemoryStore())
    secrets = {v.new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert len(secret) == 32  # 32 base32 characters = 160 bits
        assert set(secret) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def test_the_uri_is_what_an_authenticator_app_reads() -> None:
    from bastion.store import MemoryStore

    v = verifier(MemoryStore())
    secret = v.new_secret()
    uri = urlparse(v.uri(secret, "alice@example.com"))
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert uri.path == "/Bastion:alice%40example.com"
    query = parse_qs(uri.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["Bastion"]
    assert pyotp.parse_uri(v.uri(secret, "a@b.c")).now() == pyotp.TOTP(secret).now()


async def test_the_current_code_is_accepted_once_then_refused_as_used(
    shared_store: Callable[[], Store],
) -> None:
    v = verifier(shared_store())
    secret = v.new_secret()
    code = code_for(secret, time.time())
    await v.verify(secret, code, user_id="u1")
    with pytest.raises(InvalidCode) as caught:
        await v.verify(secret, code, user_id="u1")
    assert caught.value.reason == "code already used"


async def test_a_code_replayed_on_another_instance_is_refused(
    shared_store: Callable[[], Store],
) -> None:
    first, second = verifier(shared_store()), verifier(shared_store())
    secret = first.new_secret()
    code = code_for(secret, time.time())
    await first.verify(secret, code, user_id="u1")
    with pytest.raises(InvalidCode, match="already used"):
        await second.verify(secret, code, user_id="u1")


async def test_twenty_concurrent_verifies_of_one_code_give_exactly_one_success(
    shared_store: Callable[[], Store],
) -> None:
    instances = [verifier(shared_store()) for _ in range(4)]
    secret = instances[0].new_secret()
    code = code_for(secret, time.time())
    results = await asyncio.gather(
        *(instances[i % 4].verify(secret, code, user_id="u1") for i in range(20)),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, InvalidCode) for r in results if r is not None)


async def test_one_users_code_does_not_spend_another_users_step(
    shared_store: Callable[[], Store],
) -> None:
    v = verifier(shared_store())
    secret = v.new_secret()  # two users, by chance the same code: each may use it once
    code = code_for(secret, time.time())
    await v.verify(secret, code, user_id="u1")
    await v.verify(secret, code, user_id="u2")


async def test_codes_of_the_previous_and_next_steps_pass_and_two_steps_off_do_not(
    shared_store: Callable[[], Store],
) -> None:
    now = 1_700_000_010.0  # 10 s into a step
    clock = Clock(now)
    v = verifier(shared_store(), clock)
    secret = v.new_secret()
    await v.verify(secret, code_for(secret, now - 30), user_id="u1")
    await v.verify(secret, code_for(secret, now + 30), user_id="u1")
    for off in (-60, 60, -3600):
        with pytest.raises(InvalidCode) as caught:
            await v.verify(secret, code_for(secret, now + off), user_id="u1")
        assert caught.value.reason == "wrong code"


async def test_a_code_used_in_its_own_step_is_still_refused_a_step_later(
    shared_store: Callable[[], Store],
) -> None:
    # Accepted at step n, the same code is within the window at step n+1: still spent.
    clock = Clock(1_700_000_000.0)
    v = verifier(shared_store(), clock)
    secret = v.new_secret()
    code = code_for(secret, clock.now)
    await v.verify(secret, code, user_id="u1")
    clock.now += 30
    with pytest.raises(InvalidCode, match="already used"):
        await v.verify(secret, code, user_id="u1")


FULLWIDTH = "\uff11\uff12\uff13\uff14\uff15\uff16"  # NFKC folds it to 123456


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 456", FULLWIDTH, "-12345"])
async def test_malformed_codes_are_refused_before_any_store_call(code: str) -> None:
    class NoStore:
        async def hit(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("a malformed code reached the store")

    v = TotpVerifier(NoStore(), CONFIG, key=KEY)  # type: ignore[arg-type]
    with pytest.raises(InvalidCode, match="malformed"):
        await v.verify(v.new_secret(), code, user_id="u1")


async def test_a_wrong_code_spends_nothing_so_the_right_one_still_works(
    shared_store: Callable[[], Store],
) -> None:
    v = verifier(shared_store())
    secret = v.new_secret()
    right = code_for(secret, time.time())
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    with pytest.raises(InvalidCode, match="wrong code"):
        await v.verify(secret, wrong, user_id="u1")
    await v.verify(secret, right, user_id="u1")


async def test_the_store_key_names_neither_the_user_nor_the_step_and_is_tagged() -> None:
    from bastion.store import MemoryStore

    v = verifier(MemoryStore())
    key = v.replay_key("4b0a-user-id", 56_666_666)
    assert key.startswith("{")
    assert key.endswith("}")
    assert "4b0a" not in key
    assert "56666666" not in key
    other = TotpVerifier(MemoryStore(), CONFIG, key=b"another-key-of-thirty-two-bytes!")
    assert other.replay_key("4b0a-user-id", 56_666_666) != key


async def test_a_store_that_cannot_answer_refuses_the_code(tmp_path: object) -> None:
    store = RedisStore.from_url("redis://127.0.0.1:1/0")
    v = verifier(store)
    secret = v.new_secret()
    with pytest.raises(StoreUnavailable):
        await v.verify(secret, code_for(secret, time.time()), user_id="u1")
    await store.aclose()


def test_a_config_outside_rfc_6238_is_refused() -> None:
    for bad in (
        {"issuer": ""},
        {"issuer": "Evil:Corp"},
        {"issuer": "B", "digits": 4},
        {"issuer": "B", "interval": 0},
        {"issuer": "B", "valid_window": -1},
    ):
        with pytest.raises(ValueError, match=r"issuer|digits|interval|window"):
            TotpConfig(**bad)  # type: ignore[arg-type]
    from bastion.store import MemoryStore

    with pytest.raises(ValueError, match="16 to 64"):
        TotpVerifier(MemoryStore(), CONFIG, key=b"short")

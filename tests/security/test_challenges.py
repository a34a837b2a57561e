"""LoginChallenges: a challenge is signed, bound to its browser, expires, works once and
dies after five wrong codes, on every instance sharing the store (memory and Redis)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import jwt
import pytest

from bastion.security import ChallengeRefused, LoginChallenges, Store

KEY = b"challenge-key-for-tests-" + b"k" * 40  # 64 bytes: HS512 forgeries need as many
BINDING = "binding-cookie-value-of-the-browser"


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def challenges(store: Store, **kwargs: object) -> LoginChallenges:
    return LoginChallenges(store, key=KEY, **kwargs)  # type: ignore[arg-type]


async def test_a_challenge_names_its_user_and_methods(shared_store: Callable[[], Store]) -> None:
    lc = challenges(shared_store())
    token = lc.issue("user-1", binding=BINDING, methods=["totp", "recovery"])
    claims = await lc.check(token, binding=BINDING)
    assert (claims.user_id, claims.methods) == ("user-1", ("totp", "recovery"))
    assert 295 <= claims.expires_at - time.time() <= 300
    assert BINDING not in token
    assert BINDING not in str(jwt.decode(token, KEY, ["HS256"]))
    assert jwt.get_unverified_header(token)["typ"] == "mfa-challenge"


@pytest.mark.parametrize("binding", [None, "", "another-browsers-binding", BINDING + "x"])
async def test_a_challenge_from_another_browser_is_refused(
    shared_store: Callable[[], Store], binding: str | None
) -> None:
    lc = challenges(shared_store())
    token = lc.issue("user-1", binding=BINDING, methods=["totp"])
    with pytest.raises(ChallengeRefused, match="binding"):
        await lc.check(token, binding=binding)


async def test_a_challenge_works_once_on_every_instance(shared_store: Callable[[], Store]) -> None:
    first, second = challenges(shared_store()), challenges(shared_store())
    token = first.issue("user-1", binding=BINDING, methods=["totp"])
    claims = await first.check(token, binding=BINDING)
    await first.consume(claims)
    with pytest.raises(ChallengeRefused, match="already used"):
        await second.check(token, binding=BINDING)
    with pytest.raises(ChallengeRefused, match="already used"):
        await second.consume(claims)


async def test_twenty_concurrent_consumes_of_one_challenge_give_one(
    shared_store: Callable[[], Store],
) -> None:
    lc = [challenges(shared_store()) for _ in range(4)]
    token = lc[0].issue("user-1", binding=BINDING, methods=["totp"])
    claims = await lc[0].check(token, binding=BINDING)
    results = await asyncio.gather(
        *(lc[i % 4].consume(claims) for i in range(20)), return_exceptions=True
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, ChallengeRefused) for r in results if r is not None)


async def test_a_challenge_dies_after_five_wrong_codes(shared_store: Callable[[], Store]) -> None:
    first, second = challenges(shared_store()), challenges(shared_store())
    token = first.issue("user-1", binding=BINDING, methods=["totp"])
    for n in range(5):
        claims = await (first if n % 2 else second).check(token, binding=BINDING)
        await (second if n % 2 else first).failed(claims)
    with pytest.raises(ChallengeRefused, match="too many wrong codes"):
        await first.check(token, binding=BINDING)
    with pytest.raises(ChallengeRefused, match="too many wrong codes"):
        await second.check(token, binding=BINDING)


async def test_four_wrong_codes_leave_the_challenge_usable(
    shared_store: Callable[[], Store],
) -> None:
    lc = challenges(shared_store())
    token = lc.issue("user-1", binding=BINDING, methods=["totp"])
    for _ in range(4):
        await lc.failed(await lc.check(token, binding=BINDING))
    await lc.consume(await lc.check(token, binding=BINDING))


async def test_one_challenges_failures_do_not_touch_another(
    shared_store: Callable[[], Store],
) -> None:
    lc = challenges(shared_store())
    dead = lc.issue("user-1", binding=BINDING, methods=["totp"])
    alive = lc.issue("user-1", binding=BINDING, methods=["totp"])
    for _ in range(5):
        await lc.failed(await lc.check(dead, binding=BINDING))
    await lc.check(alive, binding=BINDING)


async def test_a_challenge_expires_after_five_minutes(shared_store: Callable[[], Store]) -> None:
    clock = Clock()
    lc = challenges(shared_store(), clock=clock)
    token = lc.issue("user-1", binding=BINDING, methods=["totp"])
    clock.offset = 299
    await lc.check(token, binding=BINDING)
    clock.offset = 300
    with pytest.raises(ChallengeRefused, match="expired"):
        await lc.check(token, binding=BINDING)


def _forge(claims: dict[str, object], key: bytes = KEY, typ: str = "mfa-challenge") -> str:
    return jwt.encode(claims, key, algorithm="HS256", headers={"typ": typ})


def _claims(**overrides: object) -> dict[str, object]:
    import hashlib

    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "user-1",
        "methods": ["totp"],
        "bnd": hashlib.sha256(BINDING.encode()).hexdigest(),
        "jti": "j1",
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    "token",
    [
        _forge(_claims(), key=b"an-attackers-guess-at-the-key-" + b"x" * 10),
        _forge(_claims(), typ="JWT"),  # another kind of token signed with the key
        _forge(_claims(jti=None)),
        _forge(_claims(exp=None)),
        _forge(_claims(methods="totp")),
        _forge(_claims(bnd=None)),
        jwt.encode(_claims(), KEY, algorithm="HS512", headers={"typ": "mfa-challenge"}),
        jwt.encode(_claims(), None, algorithm="none", headers={"typ": "mfa-challenge"}),
        "not.a.token",
        "x" * 5000,
        "",
    ],
    ids=[
        "wrong-key",
        "wrong-typ",
        "no-jti",
        "no-exp",
        "methods-not-list",
        "no-binding",
        "hs512",
        "alg-none",
        "garbage",
        "huge",
        "empty",
    ],
)
async def test_a_forged_or_malformed_challenge_is_refused(token: str) -> None:
    from bastion.store import MemoryStore

    with pytest.raises(ChallengeRefused):
        await challenges(MemoryStore()).check(token, binding=BINDING)


async def test_a_tampered_challenge_is_refused() -> None:
    from bastion.store import MemoryStore

    lc = challenges(MemoryStore())
    token = lc.issue("user-1", binding=BINDING, methods=["totp"])
    header, _, signature = token.split(".")
    other = lc.issue("admin-1", binding=BINDING, methods=["totp"]).split(".")[1]
    with pytest.raises(ChallengeRefused):
        await lc.check(f"{header}.{other}.{signature}", binding=BINDING)


def test_a_weak_key_or_a_silly_lifetime_is_refused() -> None:
    from bastion.store import MemoryStore

    for kwargs in ({"key": b"short"}, {"key": KEY, "ttl": 0}, {"key": KEY, "max_failures": 0}):
        with pytest.raises(ValueError, match="challenge"):
            LoginChallenges(MemoryStore(), **kwargs)  # type: ignore[arg-type]

"""Passkeys in the layer: registration and authentication with a software
authenticator, every lie it can tell refused with a fixed reason, and each state
working once, on two instances sharing one store (memory and Redis)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from bastion.security import (
    MemoryStore,
    NewPasskey,
    PasskeyConfig,
    PasskeyRefused,
    Passkeys,
    Store,
    StoredPasskey,
    open_store,
)
from tests.support.authenticator import Authenticator, b64url

ORIGIN, RP_ID = "https://shop.example", "shop.example"
CONFIG = PasskeyConfig(rp_id=RP_ID, rp_name="Bastion", origin=ORIGIN)
KEY = os.urandom(32)
USER, OTHER = "8f14e45f-ceea-467f-a0e6-1b8d0c2f9a11", "c9f0f895-fb98-4b91-9f7e-5b6a1d2e3c44"


@pytest.fixture
def passkeys() -> Passkeys:
    return Passkeys(MemoryStore(), CONFIG, key=KEY)


@pytest.fixture
async def shared_store(backend: str | None) -> AsyncIterator[Store]:
    store = open_store(backend)
    yield store
    await store.aclose()


def honest() -> Authenticator:
    return Authenticator(origin=ORIGIN, rp_id=RP_ID)


async def registered(
    passkeys: Passkeys, authenticator: Authenticator, user_id: str = USER
) -> NewPasskey:
    options, state = passkeys.registration_options(
        user_id=user_id, user_name="ada@example.com", display_name="Ada", exclude=[]
    )
    return await passkeys.verify_registration(
        state, authenticator.register(options), user_id=user_id
    )


Lookup = Callable[[str], Awaitable[StoredPasskey | None]]


def lookup_of(new: NewPasskey, user_id: str = USER, sign_count: int | None = None) -> Lookup:
    stored = StoredPasskey(
        new.credential_id,
        user_id,
        new.public_key,
        new.sign_count if sign_count is None else sign_count,
    )

    async def lookup(credential_id: str) -> StoredPasskey | None:
        return stored if credential_id == stored.credential_id else None

    return lookup


async def refused(call: Awaitable[Any]) -> str:
    with pytest.raises(PasskeyRefused) as caught:
        await call
    assert caught.value.status == 401
    return caught.value.reason


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    ("rp_id", "origin"),
    [
        ("192.0.2.7", "https://192.0.2.7"),
        ("::1", "https://[::1]"),
        ("shop.example", "http://shop.example"),
        ("shop.example", "https://evil.example"),
        ("shop.example", "https://notshop.example"),
        ("shop.example", "https://shop.example/path"),
        ("Shop.Example", "https://shop.example"),
        ("", "https://shop.example"),
    ],
)
def test_a_relying_party_that_browsers_would_refuse_is_refused_at_configuration(
    rp_id: str, origin: str
) -> None:
    with pytest.raises(ValueError, match=r"rp_id|origin"):
        PasskeyConfig(rp_id=rp_id, rp_name="Bastion", origin=origin)


def test_a_subdomain_origin_and_plain_http_on_localhost_are_accepted() -> None:
    PasskeyConfig(rp_id="shop.example", rp_name="Bastion", origin="https://www.shop.example")
    PasskeyConfig(rp_id="localhost", rp_name="Bastion", origin="http://localhost:8000")


def test_a_short_state_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Passkeys(MemoryStore(), CONFIG, key=b"short")


# ------------------------------------------------------------------ registration


async def test_registration_options_ask_for_a_discoverable_verified_credential(
    passkeys: Passkeys,
) -> None:
    options, state = passkeys.registration_options(
        user_id=USER, user_name="ada@example.com", display_name="Ada", exclude=[b64url(b"old")]
    )
    assert options["rp"] == {"id": RP_ID, "name": "Bastion"}
    assert options["user"]["id"] == b64url(USER.encode())
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["excludeCredentials"] == [{"id": b64url(b"old"), "type": "public-key"}]
    assert options["attestation"] == "none"
    assert -7 in [p["alg"] for p in options["pubKeyCredParams"]]
    assert isinstance(state, str)


async def test_an_honest_registration_gives_what_to_store(passkeys: Passkeys) -> None:
    authenticator = honest()
    new = await registered(passkeys, authenticator)
    assert new.credential_id == authenticator.credential_id
    assert new.sign_count == 0
    assert new.transports == ("internal", "hybrid")
    assert new.public_key


REGISTRATION_LIES: dict[str, tuple[dict[str, Any], str]] = {
    "another origin": ({"origin": "https://evil.example"}, "wrong origin"),
    "another rp id": ({"rp_id": "evil.example"}, "wrong rp id"),
    "no user verification": ({"uv": False}, "user not verified"),
    "no user presence": ({"up": False}, "user not present"),
    "another challenge": ({"challenge": b64url(os.urandom(32))}, "wrong challenge"),
    "an assertion's client data": ({"kind": "webauthn.get"}, "client data for another ceremony"),
}


@pytest.mark.parametrize("lie", REGISTRATION_LIES)
async def test_a_lying_registration_is_refused(passkeys: Passkeys, lie: str) -> None:
    change, reason = REGISTRATION_LIES[lie]
    options, state = passkeys.registration_options(
        user_id=USER, user_name="ada@example.com", display_name="Ada", exclude=[]
    )
    credential = honest().register(options, **change)
    assert await refused(passkeys.verify_registration(state, credential, user_id=USER)) == reason


async def test_a_registration_state_issued_to_another_user_is_refused(passkeys: Passkeys) -> None:
    options, state = passkeys.registration_options(
        user_id=OTHER, user_name="eve@example.com", display_name="Eve", exclude=[]
    )
    credential = honest().register(options)
    reason = await refused(passkeys.verify_registration(state, credential, user_id=USER))
    assert reason == "state issued to another user"


async def test_a_login_state_does_not_complete_a_registration(passkeys: Passkeys) -> None:
    options, _ = passkeys.registration_options(
        user_id=USER, user_name="ada@example.com", display_name="Ada", exclude=[]
    )
    _, login_state = passkeys.authentication_options()
    credential = honest().register(options)
    reason = await refused(passkeys.verify_registration(login_state, credential, user_id=USER))
    assert reason == "state for another ceremony"


async def test_a_registration_state_works_once_even_after_a_failure(passkeys: Passkeys) -> None:
    options, state = passkeys.registration_options(
        user_id=USER, user_name="ada@example.com", display_name="Ada", exclude=[]
    )
    liar = honest().register(options, origin="https://evil.example")
    assert await refused(passkeys.verify_registration(state, liar, user_id=USER)) == "wrong origin"
    credential = honest().register(options)
    reason = await refused(passkeys.verify_registration(state, credential, user_id=USER))
    assert reason == "state already used"


# ------------------------------------------------------------------ authentication


async def test_authentication_options_ask_any_discoverable_credential_with_verification(
    passkeys: Passkeys,
) -> None:
    options, _ = passkeys.authentication_options()
    assert options["rpId"] == RP_ID
    assert options["allowCredentials"] == []
    assert options["userVerification"] == "required"


async def test_an_honest_assertion_names_the_user_and_the_next_counter(passkeys: Passkeys) -> None:
    authenticator = honest()
    new = await registered(passkeys, authenticator)
    options, state = passkeys.authentication_options()
    used = await passkeys.verify_authentication(
        state, authenticator.assertion(options), lookup=lookup_of(new)
    )
    assert (used.credential_id, used.user_id, used.new_sign_count) == (new.credential_id, USER, 1)


async def test_an_authenticator_without_a_counter_is_accepted(passkeys: Passkeys) -> None:
    authenticator = honest()
    new = await registered(passkeys, authenticator)
    options, state = passkeys.authentication_options()
    assertion = authenticator.assertion(options, counter=0)
    used = await passkeys.verify_authentication(state, assertion, lookup=lookup_of(new))
    assert used.new_sign_count == 0


ASSERTION_LIES: dict[str, tuple[dict[str, Any], str]] = {
    "another origin": ({"origin": "https://evil.example"}, "wrong origin"),
    "another rp id": ({"rp_id": "evil.example"}, "wrong rp id"),
    "no user verification": ({"uv": False}, "user not verified"),
    "a counter gone backwards": ({"counter": 4}, "sign counter did not increase"),
    "a counter that stood still": ({"counter": 5}, "sign counter did not increase"),
    "another key's signature": (
        {"sign_with": ec.generate_private_key(ec.SECP256R1())},
        "bad signature",
    ),
    "another user's handle": (
        {"user_handle": OTHER.encode()},
        "user handle does not match the passkey's account",
    ),
    "another challenge": ({"challenge": b64url(os.urandom(32))}, "wrong challenge"),
    "a registration's client data": (
        {"kind": "webauthn.create"},
        "client data for another ceremony",
    ),
}


@pytest.mark.parametrize("lie", ASSERTION_LIES)
async def test_a_lying_assertion_is_refused(passkeys: Passkeys, lie: str) -> None:
    change, reason = ASSERTION_LIES[lie]
    authenticator = honest()
    new = await registered(passkeys, authenticator)
    options, state = passkeys.authentication_options()
    # The passkey has signed five times before: an honest sixth would pass.
    assertion = authenticator.assertion(options, **{"counter": 6, **change})
    lookup = lookup_of(new, sign_count=5)
    assert await refused(passkeys.verify_authentication(state, assertion, lookup=lookup)) == reason


async def test_the_honest_assertion_the_lies_are_made_from_passes(passkeys: Passkeys) -> None:
    authenticator = honest()
    new = await registered(passkeys, authenticator)
    options, state = passkeys.authentication_options()
    assertion = authenticator.assertion(options, counter=6)
    used = await passkeys.verify_authentication(
        state, assertion, lookup=lookup_of(new, sign_count=5)
    )
    assert used.new_sign_count == 6


async def test_an_assertion_without_a_user_handle_is_refused(passkeys: Passkeys) -> None:
    authenticator = honest()
    new = await registered(passkeys, authenticator)
    options, state = passkeys.authentication_options()
    assertion = authenticator.assertion(options)
    del assertion["response"]["userHandle"]
    reason = await refused(passkeys.verify_authentication(state, assertion, lookup=lookup_of(new)))
    assert reason == "no user handle"


async def test_an_unknown_credential_is_refused(passkeys: Passkeys) -> None:
    authenticator = honest()
    new = await registered(passkeys, authenticator)
    stranger = honest()
    await registered(passkeys, stranger)
    options, state = passkeys.authentication_options()
    assertion = stranger.assertion(options)
    reason = await refused(passkeys.verify_authentication(state, assertion, lookup=lookup_of(new)))
    assert reason == "unknown passkey"


async def test_a_registration_state_does_not_complete_a_login(passkeys: Passkeys) -> None:
    authenticator = honest()
    new = await registered(passkeys, authenticator)
    _, reg_state = passkeys.registration_options(
        user_id=USER, user_name="ada@example.com", display_name="Ada", exclude=[]
    )
    options, _ = passkeys.authentication_options()
    assertion = authenticator.assertion(options)
    call = passkeys.verify_authentication(reg_state, assertion, lookup=lookup_of(new))
    assert await refused(call) == "state for another ceremony"


@pytest.mark.parametrize(
    "credential",
    [
        "not an object",
        {},
        {"id": "x", "rawId": "x", "type": "public-key", "response": {}},
        {
            "id": "@@",
            "rawId": "@@",
            "type": "public-key",
            "response": {"clientDataJSON": "@@", "authenticatorData": "@@", "signature": "@@"},
        },
        {
            "id": "AAAA",
            "rawId": "AAAA",
            "type": "public-key",
            "response": {"clientDataJSON": "e30", "authenticatorData": "AA", "signature": "AA"},
        },
    ],
)
async def test_a_malformed_credential_is_a_refusal_never_a_crash(
    passkeys: Passkeys, credential: Any
) -> None:
    async def anything(credential_id: str) -> StoredPasskey | None:
        return StoredPasskey(credential_id, USER, b64url(b"not a key"), 0)

    _, state = passkeys.authentication_options()
    await refused(passkeys.verify_authentication(state, credential, lookup=anything))
    _, reg_state = passkeys.registration_options(
        user_id=USER, user_name="ada@example.com", display_name="Ada", exclude=[]
    )
    await refused(passkeys.verify_registration(reg_state, credential, user_id=USER))


async def test_no_reason_carries_what_the_client_sent(passkeys: Passkeys) -> None:
    options, state = passkeys.registration_options(
        user_id=USER, user_name="ada@example.com", display_name="Ada", exclude=[]
    )
    credential = honest().register(options, origin="https://evil.example/<script>")
    reason = await refused(passkeys.verify_registration(state, credential, user_id=USER))
    assert reason == "wrong origin"


# ------------------------------------------------------------------ the state


@pytest.mark.parametrize(
    ("claims", "key", "reason"),
    [
        ({"exp": int(time.time()) - 1}, KEY, "state expired"),
        ({}, os.urandom(32), "state not accepted"),
        ({"typ": "mfa-challenge"}, KEY, "state for another ceremony"),
        ({"challenge": None}, KEY, "state not accepted"),
    ],
)
async def test_a_forged_or_expired_state_is_refused(
    passkeys: Passkeys, claims: dict[str, Any], key: bytes, reason: str
) -> None:
    authenticator = honest()
    new = await registered(passkeys, authenticator)
    options, state = passkeys.authentication_options()
    forged = jwt.encode(
        {**jwt.decode(state, options={"verify_signature": False}), **claims}, key, "HS256"
    )
    assertion = authenticator.assertion(options)
    call = passkeys.verify_authentication(forged, assertion, lookup=lookup_of(new))
    assert await refused(call) == reason


async def test_a_state_that_is_not_a_token_is_refused(passkeys: Passkeys) -> None:
    nobody = lookup_of(NewPasskey("", "", 0, ()))
    for state in ("", "a.b.c", "x" * 5000):
        call = passkeys.verify_authentication(state, {}, lookup=nobody)
        assert await refused(call) in {"malformed state", "state not accepted"}


async def test_a_login_state_works_once_on_two_instances_sharing_the_store(
    shared_store: Store,
) -> None:
    first, second = (Passkeys(shared_store, CONFIG, key=KEY) for _ in range(2))
    authenticator = honest()
    new = await registered(first, authenticator)
    options, state = first.authentication_options()
    used = await first.verify_authentication(
        state, authenticator.assertion(options), lookup=lookup_of(new)
    )
    assert used.user_id == USER
    replay = second.verify_authentication(
        state, authenticator.assertion(options), lookup=lookup_of(new, sign_count=1)
    )
    assert await refused(replay) == "state already used"


async def test_a_registration_state_works_once_on_two_instances_sharing_the_store(
    shared_store: Store,
) -> None:
    first, second = (Passkeys(shared_store, CONFIG, key=KEY) for _ in range(2))
    options, state = first.registration_options(
        user_id=USER, user_name="ada@example.com", display_name="Ada", exclude=[]
    )
    await second.verify_registration(state, honest().register(options), user_id=USER)
    replay = first.verify_registration(state, honest().register(options), user_id=USER)
    assert await refused(replay) == "state already used"

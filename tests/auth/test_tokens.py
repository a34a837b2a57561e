"""Typed tokens with pinned algorithms and separate keys, attacked the way an attacker
would: every forged token (tests/auth/forgeries.py) is refused by the codec on its own,
here, and over HTTP (a protected route for access tokens, ``/api/auth/refresh`` for
refresh tokens) with a 401, ``WWW-Authenticate`` and an ``auth.token.rejected`` event, in
tests/attacks/test_api2_broken_authentication.py.

Each attack starts from a token that would be accepted (the positive controls prove
it) and spoils exactly one thing, so a refusal can only be due to that one thing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from bastion.security.exceptions import ExpiredToken, InvalidToken
from bastion.security.secret import Secret
from bastion.security.tokens import TOKEN_REASONS, TokenCodec, TokenConfig
from tests.auth.conftest import ACCESS_SECRET, REFRESH_SECRET, forge, kid
from tests.auth.forgeries import CODEC_ACCESS_ATTACKS, OTHER_SECRET, Build, Material, case_ids


def _codec(
    typ: str = "access", *secrets: str, clock: Callable[[], float] = time.time
) -> TokenCodec:
    keys = [Secret(s) for s in (secrets or (ACCESS_SECRET,))]
    return TokenCodec(
        TokenConfig(typ=typ, keys=keys, issuer="bastion", audience="bastion", ttl=900, clock=clock)
    )


def _material_for_codec() -> tuple[Material, dict[str, Any]]:
    access, claims = _codec("access").issue("user-1", claims={"sid": "s-1"})
    refresh, refresh_claims = _codec("refresh", REFRESH_SECRET).issue(
        "user-1", claims={"sid": "s-1"}
    )
    device, _ = _codec("device", OTHER_SECRET).issue("user-1")
    return Material(access, refresh, device, claims, refresh_claims), claims


def test_a_token_names_its_key_type_issuer_and_audience_and_verifies() -> None:
    codec = _codec("access")
    token, issued = codec.issue("user-1", claims={"sid": "s-1"})
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "typ": "JWT", "kid": kid(ACCESS_SECRET)}
    claims = codec.verify(token)
    assert claims == issued
    assert claims["typ"] == "access"
    assert claims["iss"] == claims["aud"] == "bastion"
    assert claims["exp"] - claims["iat"] == 900
    assert {"sub", "jti", "sid"} <= claims.keys()


def test_a_token_forged_with_the_right_secret_and_claims_verifies() -> None:
    """The control for every attack below: ``forge`` makes tokens Bastion accepts."""
    _, claims = _material_for_codec()
    assert _codec("access").verify(forge(claims, ACCESS_SECRET)) == claims


@pytest.mark.parametrize(
    ("name", "build"), CODEC_ACCESS_ATTACKS, ids=case_ids(CODEC_ACCESS_ATTACKS)
)
def test_the_codec_refuses_every_forged_access_token(name: str, build: Build) -> None:
    material, claims = _material_for_codec()
    with pytest.raises(InvalidToken) as caught:
        _codec("access").verify(build(material, claims, ACCESS_SECRET))
    assert caught.value.reason in TOKEN_REASONS


def test_the_codec_refuses_a_token_expired_by_its_own_clock() -> None:
    now = [1_000_000.0]
    codec = _codec("access", clock=lambda: now[0])
    token, _ = codec.issue("user-1")
    now[0] += 899
    codec.verify(token)
    now[0] += 1
    with pytest.raises(InvalidToken, match="expired"):
        codec.verify(token)


def test_a_token_never_outlives_its_not_after_and_says_so_when_it_expires() -> None:
    now = [1_000_000.0]
    codec = _codec("refresh", REFRESH_SECRET, clock=lambda: now[0])
    token, claims = codec.issue("user-1", claims={"sid": "s-1"}, not_after=1_000_100)
    assert claims["exp"] == 1_000_100  # the ttl (900) would have said 1_000_900
    _, later_claims = codec.issue("user-1", not_after=2_000_000, jti="chosen")
    assert (later_claims["exp"], later_claims["jti"]) == (1_000_900, "chosen")
    now[0] = 1_000_100
    with pytest.raises(ExpiredToken) as caught:
        codec.verify(token)
    assert caught.value.claims["sid"] == "s-1"  # verified, for the caller's log
    # A token that fails on anything but time is never an ExpiredToken.
    forged = forge({**claims, "exp": 1}, OTHER_SECRET, headers={"kid": kid(REFRESH_SECRET)})
    with pytest.raises(InvalidToken) as refused:
        codec.verify(forged)
    assert not isinstance(refused.value, ExpiredToken)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"keys": []}, "at least one key"),
        ({"algorithm": "none"}, "unsupported algorithm"),
        ({"algorithm": "RS256"}, "unsupported algorithm"),
        ({"keys": [Secret(ACCESS_SECRET), Secret(ACCESS_SECRET)]}, "listed twice"),
        ({"ttl": 0}, "ttl"),
    ],
)
def test_a_codec_cannot_be_configured_unsafely(config: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {
        "typ": "access",
        "keys": [Secret(ACCESS_SECRET)],
        "issuer": "bastion",
        "audience": "bastion",
        "ttl": 900,
        **config,
    }
    with pytest.raises(ValueError, match=message):
        TokenConfig(**values)


@pytest.mark.parametrize("value", ["", b""])
def test_an_empty_secret_is_refused(value: str | bytes) -> None:
    with pytest.raises(ValueError, match="empty"):
        Secret(value)


def test_a_secret_never_shows_itself() -> None:
    secret = Secret(ACCESS_SECRET)
    assert ACCESS_SECRET not in repr(secret)
    assert ACCESS_SECRET not in str(secret)
    assert len(secret.key_id) == 16
    assert secret.key_id not in ACCESS_SECRET

"""Typed tokens with pinned algorithms and separate keys, attacked the way an attacker
would: every forged token below is refused, on its own (the codec) and over HTTP (a
protected route for access tokens, ``/api/auth/refresh`` for refresh tokens), with a
401, ``WWW-Authenticate`` and an ``auth.token.rejected`` event.

Each attack starts from a token that would be accepted (the positive controls prove
it) and spoils exactly one thing, so a refusal can only be due to that one thing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest

from bastion.app import BastionApp
from bastion.security.exceptions import InvalidToken
from bastion.security.secret import Secret
from bastion.security.tokens import TokenCodec, TokenConfig
from tests.auth.conftest import (
    ACCESS_SECRET,
    DEVICE_COOKIE,
    REFRESH_COOKIE,
    REFRESH_SECRET,
    claims_of,
    forge,
    forge_raw,
    kid,
    record_events,
)
from tests.conftest import client_for

OTHER_SECRET = "an-attackers-guess-" + "g7" * 23


@dataclass(frozen=True)
class Material:
    """What an attacker holding one signed-in device has: its real tokens, and the
    claims a valid token of each kind carries."""

    access: str
    refresh: str
    device: str
    access_claims: dict[str, Any]
    refresh_claims: dict[str, Any]


Build = Callable[[Material, dict[str, Any], str], str]
"""(material, valid claims of the kind under attack, that kind's secret) -> token"""


def _without(name: str) -> Build:
    return lambda m, c, s: forge({k: v for k, v in c.items() if k != name}, s)


def _with(**changes: Any) -> Build:
    return lambda m, c, s: forge({**c, **changes}, s)


def _header(**extra: Any) -> Build:
    return lambda m, c, s: forge(c, s, headers=extra)


def _raw(
    header: dict[str, Any], key: Callable[[str], bytes | None], digest: str = "sha256"
) -> Build:
    return lambda m, c, s: forge_raw(
        {k: (kid(s) if v is _KID else v) for k, v in header.items()}, c, key(s), digest=digest
    )


_KID = object()  # stands for the kid of the secret under attack


def _tampered(m: Material, c: dict[str, Any], s: str) -> str:
    """A real, validly signed token whose payload was swapped for another user's."""
    header, _, signature = forge(c, s).split(".")
    other = forge({**c, "sub": "00000000-0000-4000-8000-000000000000"}, s).split(".")[1]
    return f"{header}.{other}.{signature}"


_NOW = int(time.time())
_JWK = {"kty": "oct", "k": "YXR0YWNrZXI"}

# Attacks on either kind of token: (id, builder).
COMMON_ATTACKS: list[tuple[str, Build]] = [
    ("alg none, unsigned", _raw({"alg": "none", "typ": "JWT", "kid": _KID}, lambda s: None)),
    ("alg None, unsigned", _raw({"alg": "None", "kid": _KID}, lambda s: None)),
    ("alg NONE, unsigned", _raw({"alg": "NONE", "kid": _KID}, lambda s: None)),
    ("alg none over a valid signature", _raw({"alg": "none", "kid": _KID}, str.encode)),
    ("alg hs256 in lower case", _raw({"alg": "hs256", "kid": _KID}, str.encode)),
    ("HS384 with the right secret", lambda m, c, s: forge(c, s, alg="HS384")),
    ("HS512 with the right secret", lambda m, c, s: forge(c, s, alg="HS512")),
    ("RS256 header over an HMAC of the secret", _raw({"alg": "RS256", "kid": _KID}, str.encode)),
    (
        "HS384 header over an HS384 HMAC of the secret",
        _raw({"alg": "HS384", "kid": _KID}, str.encode, "sha384"),
    ),
    ("empty key", _raw({"alg": "HS256", "kid": _KID}, lambda s: b"")),
    ("empty key, no kid", _raw({"alg": "HS256"}, lambda s: b"")),
    (
        "kid path traversal to /dev/null with an empty key",
        _raw({"alg": "HS256", "kid": "../../../../../../dev/null"}, lambda s: b""),
    ),
    ("kid SQL injection", _header(kid="x' UNION SELECT 'secret' --")),
    ("kid as an object", _raw({"alg": "HS256", "kid": {"$ne": ""}}, str.encode)),
    ("kid as a list", _raw({"alg": "HS256", "kid": [kid(ACCESS_SECRET)]}, str.encode)),
    ("no kid", _raw({"alg": "HS256"}, str.encode)),
    ("signed with an unknown secret", lambda m, c, s: forge(c, OTHER_SECRET)),
    (
        "signed with an unknown secret under the right kid",
        lambda m, c, s: forge(c, OTHER_SECRET, headers={"kid": kid(s)}),
    ),
    ("jku header", _header(jku="https://attacker.example/jwks.json")),
    ("x5u header", _header(x5u="https://attacker.example/cert.pem")),
    ("jwk header", _header(jwk=_JWK)),
    ("x5c header", _header(x5c=["MIIBszCCAVmgAwIBAgIUQ"])),
    ("crit header", _header(crit=["exp"], exp=1)),
    ("expired", _with(iat=_NOW - 7200, exp=_NOW - 3600)),
    ("issued in the future", _with(iat=_NOW + 3600, exp=_NOW + 7200)),
    ("exp as a numeric string", _with(exp=str(_NOW + 3600))),
    ("iat as a float", _with(iat=_NOW + 0.5)),
    ("without exp", _without("exp")),
    ("without iat", _without("iat")),
    ("without sub", _without("sub")),
    ("without jti", _without("jti")),
    ("without iss", _without("iss")),
    ("without aud", _without("aud")),
    ("without typ", _without("typ")),
    ("sub not a string", _with(sub=12345)),
    ("jti not a string", _with(jti=12345)),
    ("wrong aud", _with(aud="another-service")),
    ("aud list holding ours", _with(aud=["bastion", "another-service"])),
    ("wrong iss", _with(iss="https://attacker.example")),
    ("payload swapped under a valid signature", _tampered),
]

# Attacks the codec itself refuses; the routes add the session check ("without sid").
CODEC_ACCESS_ATTACKS: list[tuple[str, Build]] = [
    *COMMON_ATTACKS,
    ("the refresh token", lambda m, c, s: m.refresh),
    ("the device cookie's token", lambda m, c, s: m.device),
    ("access claims signed with the refresh secret", lambda m, c, s: forge(c, REFRESH_SECRET)),
    (
        "access claims signed with the refresh secret under the access kid",
        lambda m, c, s: forge(c, REFRESH_SECRET, headers={"kid": kid(ACCESS_SECRET)}),
    ),
    ("typ refresh signed with the access secret", _with(typ="refresh")),
    ("typ device signed with the access secret", _with(typ="device")),
]
ACCESS_ATTACKS = [*CODEC_ACCESS_ATTACKS, ("without sid", _without("sid"))]

REFRESH_ATTACKS: list[tuple[str, Build]] = [
    *COMMON_ATTACKS,
    ("the access token", lambda m, c, s: m.access),
    ("the device cookie's token", lambda m, c, s: m.device),
    ("refresh claims signed with the access secret", lambda m, c, s: forge(c, ACCESS_SECRET)),
    (
        "refresh claims signed with the access secret under the refresh kid",
        lambda m, c, s: forge(c, ACCESS_SECRET, headers={"kid": kid(REFRESH_SECRET)}),
    ),
    ("typ access signed with the refresh secret", _with(typ="access")),
    ("without sid", _without("sid")),
]


def _ids(cases: list[tuple[str, Build]]) -> list[str]:
    return [name for name, _ in cases]


# --------------------------------------------------------------------------- the codec


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


@pytest.mark.parametrize(("name", "build"), CODEC_ACCESS_ATTACKS, ids=_ids(CODEC_ACCESS_ATTACKS))
def test_the_codec_refuses_every_forged_access_token(name: str, build: Build) -> None:
    material, claims = _material_for_codec()
    with pytest.raises(InvalidToken) as caught:
        _codec("access").verify(build(material, claims, ACCESS_SECRET))
    assert caught.value.reason


def test_the_codec_refuses_a_token_expired_by_its_own_clock() -> None:
    now = [1_000_000.0]
    codec = _codec("access", clock=lambda: now[0])
    token, _ = codec.issue("user-1")
    now[0] += 899
    codec.verify(token)
    now[0] += 1
    with pytest.raises(InvalidToken, match="expired"):
        codec.verify(token)


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


# --------------------------------------------------------------------------- over HTTP


@pytest.fixture
async def material(auth_app: BastionApp, account: dict[str, Any]) -> Material:
    """The tokens of one real sign-in."""
    async with client_for(auth_app) as c:
        r = await c.post(
            "/api/auth/login", json={"email": account["email"], "password": account["password"]}
        )
    assert r.status_code == 200, r.text
    access, refresh = r.json()["accessToken"], r.cookies[REFRESH_COOKIE]
    return Material(
        access, refresh, r.cookies[DEVICE_COOKIE], claims_of(access), claims_of(refresh)
    )


def _assert_rejected(r: Any, events: list[dict[str, Any]]) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["content-type"] == "application/problem+json"
    rejected = [e for e in events if e["event"] == "auth.token.rejected"]
    assert rejected, events
    assert rejected[-1]["reason"]


async def test_an_access_token_forged_with_the_right_secret_and_claims_is_accepted(
    auth_app: BastionApp, material: Material
) -> None:
    async with client_for(auth_app) as c:
        token = forge(material.access_claims, ACCESS_SECRET)
        r = await c.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("name", "build"), ACCESS_ATTACKS, ids=_ids(ACCESS_ATTACKS))
async def test_a_forged_access_token_gets_401_and_an_event(
    auth_app: BastionApp, material: Material, name: str, build: Build
) -> None:
    token = build(material, material.access_claims, ACCESS_SECRET)
    events = record_events(auth_app)
    async with client_for(auth_app) as c:
        r = await c.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    _assert_rejected(r, events)


async def test_a_refresh_token_forged_with_the_right_secret_and_claims_is_accepted(
    auth_app: BastionApp, material: Material
) -> None:
    token = forge(material.refresh_claims, REFRESH_SECRET)
    async with client_for(auth_app) as c:
        r = await c.post("/api/auth/refresh", headers={"Cookie": f"{REFRESH_COOKIE}={token}"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("name", "build"), REFRESH_ATTACKS, ids=_ids(REFRESH_ATTACKS))
async def test_a_forged_refresh_token_gets_401_and_an_event_and_alarms_nobody(
    auth_app: BastionApp, material: Material, name: str, build: Build
) -> None:
    token = build(material, material.refresh_claims, REFRESH_SECRET)
    events = record_events(auth_app)
    async with client_for(auth_app) as c:
        r = await c.post("/api/auth/refresh", headers={"Cookie": f"{REFRESH_COOKIE}={token}"})
        _assert_rejected(r, events)
        assert not any(e["event"] == "auth.refresh.reuse_detected" for e in events)
        # A forgery is not reuse: the real session goes on.
        real = await c.post(
            "/api/auth/refresh", headers={"Cookie": f"{REFRESH_COOKIE}={material.refresh}"}
        )
    assert real.status_code == 200, real.text

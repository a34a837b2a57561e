"""Helpers for the session and token tests: the secrets of an app whose secrets the test
knows, so that it can forge tokens the way an attacker who guessed (or stole) them would,
and signed-in devices. The fixtures that use them (``auth_app``, ``sign_in``, ``account``,
``two_users``) are in tests/conftest.py, shared with tests/attacks/."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import jwt

from bastion.app import BastionApp
from bastion.security.secret import Secret

if TYPE_CHECKING:  # tests/conftest.py imports this module: no import back at run time
    from tests.conftest import Client

# 64 bytes each: long enough for PyJWT to sign HS512 with them without a warning.
ACCESS_SECRET = "access-secret-for-tests-" + "a1" * 20
REFRESH_SECRET = "refresh-secret-for-tests-" + "r2" * 19 + "x"
SECRETS = {"access_secret": ACCESS_SECRET, "refresh_secret": REFRESH_SECRET}
REFRESH_COOKIE = "__Secure-refreshToken"
DEVICE_COOKIE = "__Secure-deviceToken"


def kid(secret: str) -> str:
    """The ``kid`` Bastion gives tokens signed with ``secret``."""
    return Secret(secret).key_id


def claims_of(token: str) -> dict[str, Any]:
    """A token's claims, read without verifying it (as an attacker reads them)."""
    return dict(jwt.decode(token, options={"verify_signature": False}))


def forge(
    claims: dict[str, Any],
    secret: str | bytes,
    *,
    alg: str = "HS256",
    headers: dict[str, Any] | None = None,
) -> str:
    """A token signed with PyJWT, ``kid`` defaulting to the key's own."""
    key = secret.encode() if isinstance(secret, str) else secret
    header = {"kid": Secret(key).key_id, **(headers or {})}
    return jwt.encode(claims, key, algorithm=alg, headers=header)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge_raw(
    header: dict[str, Any], claims: dict[str, Any], key: bytes | None, *, digest: str = "sha256"
) -> str:
    """A token built by hand, for what PyJWT refuses to make: an empty HMAC key, an
    ``alg`` that does not match the signature, no signature at all (``key=None``)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if key is None:
        return signing_input + "."
    signature = hmac.new(key, signing_input.encode(), getattr(hashlib, digest)).digest()
    return f"{signing_input}.{_b64(signature)}"


def record_events(app: BastionApp) -> list[dict[str, Any]]:
    """Every security event ``app`` emits from now on (its stored sink still gets them)."""
    recorded: list[dict[str, Any]] = []
    log = app.services.events
    downstream = log.sink

    def tee(record: dict[str, Any]) -> None:
        recorded.append(record)
        if downstream is not None:
            downstream(record)

    log.sink = tee
    return recorded


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def set_cookies(response: Any, name: str) -> list[str]:
    return [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}=")]


def refresh_cookie_of(response: Any) -> str:
    """The refresh token a response set (the last one if it set several)."""
    (cookie,) = set_cookies(response, REFRESH_COOKIE)[-1:]
    return cookie.split(";", 1)[0].split("=", 1)[1]


class Device:
    """One signed-in device: its own client (cookie jar), access token and session."""

    def __init__(self, client: Client, access: str, refresh: str) -> None:
        self.client = client
        self.access = access
        self.refresh_token = refresh
        self.earlier_access: list[str] = []

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access)

    @property
    def session_id(self) -> str:
        return str(claims_of(self.access)["sid"])

    async def me(self) -> int:
        r = await self.client.get("/api/users/me", headers=self.headers)
        return r.status_code

    async def refresh(self) -> int:
        """Refresh with this device's cookie; on success keep the new tokens (and the
        access token it had, in ``earlier_access``)."""
        r = await self.client.post("/api/auth/refresh", headers=_cookie(self.refresh_token))
        self.client.cookies.clear()  # the device sends its cookie explicitly, never the jar's
        if r.status_code == 200:
            self.earlier_access.append(self.access)
            self.access = r.json()["accessToken"]
            self.refresh_token = refresh_cookie_of(r)
        return r.status_code


def _cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"{REFRESH_COOKIE}={token}"}


SignIn = Callable[..., Awaitable[Device]]

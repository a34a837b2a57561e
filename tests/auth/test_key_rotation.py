"""Key rotation without logging everyone out: after ``BASTION_*_SECRET`` changes, tokens
signed with the ``*_PREVIOUS`` secret still verify until they expire, new tokens are
signed with (and name, in ``kid``) the current secret, and any other secret is refused."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from bastion.app import BastionApp
from tests.auth.conftest import (
    ACCESS_SECRET,
    REFRESH_COOKIE,
    REFRESH_SECRET,
    bearer,
    claims_of,
    forge,
    kid,
    refresh_cookie_of,
)
from tests.conftest import client_for

NEW_ACCESS = "rotated-access-secret-" + "n3" * 21
NEW_REFRESH = "rotated-refresh-secret-" + "m4" * 21
UNKNOWN = "never-configured-secret-" + "u5" * 20


@pytest.fixture
async def old_tokens(start_app: Any) -> dict[str, str]:
    """A sign-in made before the rotation, by an app on the old secrets."""
    old: BastionApp = await start_app(access_secret=ACCESS_SECRET, refresh_secret=REFRESH_SECRET)
    async with client_for(old) as c:
        user = await c.register()
        r = await c.post(
            "/api/auth/login", json={"email": user["email"], "password": user["password"]}
        )
    assert r.status_code == 200
    return {"access": r.json()["accessToken"], "refresh": refresh_cookie_of(r)}


@pytest.fixture
async def rotated(start_app: Any) -> BastionApp:
    """The same service (same database) after the rotation."""
    app: BastionApp = await start_app(
        access_secret=NEW_ACCESS,
        access_secret_previous=ACCESS_SECRET,
        refresh_secret=NEW_REFRESH,
        refresh_secret_previous=REFRESH_SECRET,
    )
    return app


async def test_access_tokens_signed_with_the_previous_secret_still_work(
    old_tokens: dict[str, str], rotated: BastionApp
) -> None:
    assert jwt.get_unverified_header(old_tokens["access"])["kid"] == kid(ACCESS_SECRET)
    async with client_for(rotated) as c:
        r = await c.get("/api/users/me", headers=bearer(old_tokens["access"]))
    assert r.status_code == 200, r.text


async def test_a_refresh_token_signed_with_the_previous_secret_rotates_onto_the_current_one(
    old_tokens: dict[str, str], rotated: BastionApp
) -> None:
    async with client_for(rotated) as c:
        r = await c.post(
            "/api/auth/refresh", headers={"Cookie": f"{REFRESH_COOKIE}={old_tokens['refresh']}"}
        )
        assert r.status_code == 200, r.text
        access, refresh = r.json()["accessToken"], refresh_cookie_of(r)
        assert jwt.get_unverified_header(access)["kid"] == kid(NEW_ACCESS)
        assert jwt.get_unverified_header(refresh)["kid"] == kid(NEW_REFRESH)
        assert claims_of(refresh)["sid"] == claims_of(old_tokens["refresh"])["sid"]
        me = await c.get("/api/users/me", headers=bearer(access))
    assert me.status_code == 200


async def test_new_sign_ins_are_signed_with_the_current_secrets(rotated: BastionApp) -> None:
    async with client_for(rotated) as c:
        user = await c.register()
        r = await c.post(
            "/api/auth/login", json={"email": user["email"], "password": user["password"]}
        )
    assert jwt.get_unverified_header(r.json()["accessToken"])["kid"] == kid(NEW_ACCESS)
    assert jwt.get_unverified_header(refresh_cookie_of(r))["kid"] == kid(NEW_REFRESH)


async def test_without_the_previous_secret_the_old_tokens_are_refused(
    old_tokens: dict[str, str], start_app: Any
) -> None:
    app: BastionApp = await start_app(access_secret=NEW_ACCESS, refresh_secret=NEW_REFRESH)
    async with client_for(app) as c:
        me = await c.get("/api/users/me", headers=bearer(old_tokens["access"]))
        refresh = await c.post(
            "/api/auth/refresh", headers={"Cookie": f"{REFRESH_COOKIE}={old_tokens['refresh']}"}
        )
    assert (me.status_code, refresh.status_code) == (401, 401)


@pytest.mark.parametrize(
    "headers",
    [None, {"kid": kid(NEW_ACCESS)}, {"kid": kid(ACCESS_SECRET)}],
    ids=["its own kid", "the current kid", "the previous kid"],
)
async def test_a_token_signed_with_an_unknown_secret_is_refused(
    old_tokens: dict[str, str], rotated: BastionApp, headers: dict[str, str] | None
) -> None:
    claims = claims_of(old_tokens["access"])
    async with client_for(rotated) as c:
        control = await c.get("/api/users/me", headers=bearer(forge(claims, NEW_ACCESS)))
        r = await c.get("/api/users/me", headers=bearer(forge(claims, UNKNOWN, headers=headers)))
    assert control.status_code == 200
    assert r.status_code == 401


async def test_the_previous_access_secret_does_not_verify_refresh_tokens(
    old_tokens: dict[str, str], rotated: BastionApp
) -> None:
    claims = claims_of(old_tokens["refresh"])
    async with client_for(rotated) as c:
        r = await c.post(
            "/api/auth/refresh",
            headers={"Cookie": f"{REFRESH_COOKIE}={forge(claims, ACCESS_SECRET)}"},
        )
    assert r.status_code == 401

"""Sessions as token families: the refresh cookie, rotation, and every way a session
ends (each ends exactly the sessions it should, their unexpired access tokens included).
Reuse detection, racing refreshes, cross-origin calls and other users' sessions are in
tests/attacks/ (API1 and API2)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from bastion.app import BastionApp
from tests.auth.conftest import (
    REFRESH_COOKIE,
    Device,
    bearer,
    claims_of,
    set_cookies,
)
from tests.conftest import client_for

COOKIE = re.compile(
    r"__Secure-refreshToken=([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+);"
    r" HttpOnly; Secure; SameSite=Strict; Path=/api/auth; Max-Age=604800"
)


def _cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"{REFRESH_COOKIE}={token}"}


async def _statuses(*devices: Device) -> list[int]:
    return [await d.me() for d in devices]


# --------------------------------------------------------------------------- the cookie


async def test_login_and_refresh_set_the_refresh_cookie_exactly_as_the_contract_says(
    auth_app: BastionApp, account: dict[str, Any]
) -> None:
    async with client_for(auth_app) as c:
        login = await c.post(
            "/api/auth/login", json={"email": account["email"], "password": account["password"]}
        )
        refresh = await c.post("/api/auth/refresh")
    for r in (login, refresh):
        assert r.status_code == 200, r.text
        (cookie,) = set_cookies(r, REFRESH_COOKIE)
        match = COOKIE.fullmatch(cookie)
        assert match, cookie
        assert claims_of(match.group(1))["typ"] == "refresh"
        assert r.headers["cache-control"] == "no-store"
        access = r.json()["accessToken"]
        assert r.json()["tokenType"] == "Bearer"
        assert not any(access in c for c in r.headers.get_list("set-cookie"))


async def test_the_refresh_cookie_goes_only_to_the_auth_paths_and_logout_clears_it(
    auth_app: BastionApp, account: dict[str, Any]
) -> None:
    async with client_for(auth_app) as c:
        login = await c.post(
            "/api/auth/login", json={"email": account["email"], "password": account["password"]}
        )
        headers = bearer(login.json()["accessToken"])
        me = await c.get("/api/users/me", headers=headers)
        assert me.status_code == 200
        assert REFRESH_COOKIE not in me.request.headers.get("cookie", "")
        refreshed = await c.post("/api/auth/refresh")
        assert refreshed.status_code == 200
        assert REFRESH_COOKIE in refreshed.request.headers["cookie"]

        logout = await c.post("/api/auth/logout")
        assert logout.status_code == 204
        assert logout.headers["cache-control"] == "no-store"
        (cleared,) = set_cookies(logout, REFRESH_COOKIE)
        assert cleared.startswith(f"{REFRESH_COOKIE}=;")
        assert "Max-Age=0" in cleared
        assert "Path=/api/auth" in cleared
        assert REFRESH_COOKIE not in c.cookies
        after = await c.post("/api/auth/refresh")
    assert after.status_code == 401


# --------------------------------------------------------------------------- rotation


async def test_refresh_rotates_and_the_new_tokens_belong_to_the_same_session(
    account: dict[str, Any], sign_in: Callable[..., Awaitable[Device]]
) -> None:
    device = await sign_in(account["email"], account["password"])
    first_access, first_refresh, sid = device.access, device.refresh_token, device.session_id
    assert await device.refresh() == 200
    assert device.refresh_token != first_refresh
    assert device.access != first_access
    assert claims_of(device.refresh_token)["sid"] == sid
    assert device.session_id == sid
    assert await device.me() == 200


async def test_two_logins_of_one_user_stay_independent(
    account: dict[str, Any], sign_in: Callable[..., Awaitable[Device]]
) -> None:
    phone = await sign_in(account["email"], account["password"])
    laptop = await sign_in(account["email"], account["password"])
    assert phone.session_id != laptop.session_id
    laptop_refresh = laptop.refresh_token
    for _ in range(3):
        assert await phone.refresh() == 200
    assert laptop.refresh_token == laptop_refresh
    assert await laptop.refresh() == 200
    assert await _statuses(phone, laptop) == [200, 200]
    r = await phone.client.post("/api/auth/logout", headers=_cookie(phone.refresh_token))
    assert r.status_code == 204
    assert await _statuses(phone, laptop) == [401, 200]
    assert await laptop.refresh() == 200


# --------------------------------------------------------------------------- ending sessions


async def test_logout_ends_this_session_and_no_other(
    two_users: tuple[list[Device], Device, dict[str, Any]],
) -> None:
    (this, sibling, _), stranger, _ = two_users
    r = await this.client.post("/api/auth/logout", headers=_cookie(this.refresh_token))
    assert r.status_code == 204
    assert await _statuses(this, sibling, stranger) == [401, 200, 200]
    stale = await this.client.get("/api/users/me", headers=bearer(this.earlier_access[0]))
    assert stale.status_code == 401
    assert [await this.refresh(), await sibling.refresh(), await stranger.refresh()] == [
        401,
        200,
        200,
    ]


@pytest.mark.parametrize(
    "cookie", [None, "garbage", "a.b.c"], ids=["no cookie", "garbage", "not a token"]
)
async def test_logout_without_a_valid_refresh_cookie_ends_nothing(
    two_users: tuple[list[Device], Device, dict[str, Any]], cookie: str | None
) -> None:
    (this, sibling, _), stranger, _ = two_users
    r = await this.client.post(
        "/api/auth/logout", headers=_cookie(cookie) if cookie is not None else {}
    )
    assert r.status_code == 204
    assert await _statuses(this, sibling, stranger) == [200, 200, 200]


async def test_logout_all_ends_every_session_of_the_user_and_no_one_elses(
    two_users: tuple[list[Device], Device, dict[str, Any]],
) -> None:
    (this, sibling, cousin), stranger, _ = two_users
    r = await sibling.client.post("/api/auth/logout-all", headers=sibling.headers)
    assert r.status_code == 204
    assert set_cookies(r, REFRESH_COOKIE)[0].startswith(f"{REFRESH_COOKIE}=;")
    assert await _statuses(this, sibling, cousin, stranger) == [401, 401, 401, 200]
    stale = await this.client.get("/api/users/me", headers=bearer(this.earlier_access[0]))
    assert stale.status_code == 401
    assert [await d.refresh() for d in (this, sibling, cousin, stranger)] == [401, 401, 401, 200]


async def test_deleting_a_session_ends_it_and_only_it(
    two_users: tuple[list[Device], Device, dict[str, Any]],
) -> None:
    (this, sibling, cousin), stranger, _ = two_users
    r = await sibling.client.delete(
        f"/api/auth/sessions/{this.session_id}", headers=sibling.headers
    )
    assert r.status_code == 204
    assert await _statuses(this, sibling, cousin, stranger) == [401, 200, 200, 200]
    stale = await this.client.get("/api/users/me", headers=bearer(this.earlier_access[0]))
    assert stale.status_code == 401
    assert await this.refresh() == 401
    again = await sibling.client.delete(
        f"/api/auth/sessions/{this.session_id}", headers=sibling.headers
    )
    assert again.status_code == 404


@pytest.mark.parametrize("session_id", [str(uuid.uuid4()), "not-a-uuid", "1"])
async def test_deleting_a_session_that_does_not_exist_is_404(
    two_users: tuple[list[Device], Device, dict[str, Any]], session_id: str
) -> None:
    (this, _, _), _, _ = two_users
    r = await this.client.delete(f"/api/auth/sessions/{session_id}", headers=this.headers)
    assert r.status_code == 404


async def test_a_password_change_ends_every_other_session_and_keeps_this_one(
    auth_app: BastionApp, two_users: tuple[list[Device], Device, dict[str, Any]]
) -> None:
    (this, sibling, cousin), stranger, mine = two_users
    new_password = "Another-Long-Passphrase-77"
    r = await sibling.client.post(
        "/api/users/me/password",
        json={"currentPassword": mine["password"], "newPassword": new_password},
        headers=sibling.headers,
    )
    assert r.status_code == 204, r.text
    assert await _statuses(this, sibling, cousin, stranger) == [401, 200, 401, 200]
    stale = await this.client.get("/api/users/me", headers=bearer(this.earlier_access[0]))
    assert stale.status_code == 401
    assert [await d.refresh() for d in (this, sibling, cousin, stranger)] == [401, 200, 401, 200]
    async with client_for(auth_app) as c:
        old = await c.post(
            "/api/auth/login", json={"email": mine["email"], "password": mine["password"]}
        )
        new = await c.post(
            "/api/auth/login", json={"email": mine["email"], "password": new_password}
        )
    assert (old.status_code, new.status_code) == (401, 200)


async def test_the_sessions_list_shows_each_live_session_with_the_current_one_marked(
    account: dict[str, Any], sign_in: Callable[..., Awaitable[Device]]
) -> None:
    phone = await sign_in(
        account["email"], account["password"], ip="198.51.100.4", user_agent="Phone/1"
    )
    laptop = await sign_in(
        account["email"], account["password"], ip="192.0.2.8", user_agent="Laptop/2"
    )
    gone = await sign_in(account["email"], account["password"])
    await gone.client.post("/api/auth/logout", headers=_cookie(gone.refresh_token))
    before = (await laptop.client.get("/api/auth/sessions", headers=laptop.headers)).json()
    assert await phone.refresh() == 200

    r = await laptop.client.get("/api/auth/sessions", headers=laptop.headers)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    items = {s["id"]: s for s in r.json()["items"]}
    assert set(items) == {phone.session_id, laptop.session_id}
    assert items[laptop.session_id]["current"] is True
    assert items[phone.session_id]["current"] is False
    assert (items[phone.session_id]["userAgent"], items[phone.session_id]["ip"]) == (
        "Phone/1",
        "198.51.100.4",
    )
    assert (items[laptop.session_id]["userAgent"], items[laptop.session_id]["ip"]) == (
        "Laptop/2",
        "192.0.2.8",
    )
    fields = {
        "id", "createdAt", "lastUsedAt", "expiresAt", "userAgent", "ip", "current", "authMethods",
    }  # fmt: skip
    when = datetime.fromisoformat
    for item in items.values():
        assert set(item) == fields
        assert item["authMethods"] == ["pwd"]  # a password alone
        # The absolute end: BASTION_SESSION_MAX_AGE (30 days) after the login, in the
        # whole seconds of a token's exp.
        lifetime = when(item["expiresAt"]) - when(item["createdAt"])
        assert timedelta(days=30, seconds=-1) < lifetime <= timedelta(days=30)
    (phone_before,) = [s for s in before["items"] if s["id"] == phone.session_id]
    assert when(items[phone.session_id]["lastUsedAt"]) > when(phone_before["lastUsedAt"])
    assert items[phone.session_id]["createdAt"] == phone_before["createdAt"]
    assert items[phone.session_id]["expiresAt"] == phone_before["expiresAt"]  # not moved


async def test_an_admin_ends_every_session_of_one_user_and_no_one_elses(
    auth_app: BastionApp, two_users: tuple[list[Device], Device, dict[str, Any]]
) -> None:
    """ASVS V7.4.5: an admin can end a user's sessions (a stolen laptop, an employee who
    left); their unexpired access tokens go with them, and nobody else's sessions do."""
    from tests.api.test_admin_users import make_admin

    (this, sibling, cousin), stranger, mine = two_users
    async with client_for(auth_app) as admin_client:
        admin = await make_admin(auth_app, admin_client)
        r = await admin_client.delete(f"/api/admin/users/{mine['id']}/sessions", headers=admin)
        assert r.status_code == 204
        assert (await admin_client.get("/api/users/me", headers=admin)).status_code == 200
        again = await admin_client.delete(f"/api/admin/users/{mine['id']}/sessions", headers=admin)
        assert again.status_code == 204  # nothing left to end is not an error
        unknown = await admin_client.delete(
            f"/api/admin/users/{uuid.uuid4()}/sessions", headers=admin
        )
        assert unknown.status_code == 404
    assert await _statuses(this, sibling, cousin, stranger) == [401, 401, 401, 200]
    stale = await this.client.get("/api/users/me", headers=bearer(this.earlier_access[0]))
    assert stale.status_code == 401
    assert [await d.refresh() for d in (this, sibling, cousin, stranger)] == [401, 401, 401, 200]

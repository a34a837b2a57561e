"""Sessions as token families: the refresh cookie, rotation by compare-and-set, reuse
detection, and every way a session ends (each ends exactly the sessions it should,
their unexpired access tokens included)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from bastion.app import BastionApp
from bastion.db import users
from tests.auth.conftest import (
    REFRESH_COOKIE,
    Device,
    bearer,
    claims_of,
    record_events,
    set_cookies,
)
from tests.conftest import PASSWORD, client_for

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


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),
        ("https://testserver", True),
        ("https://evil.example", False),
        ("https://testserver.evil.example", False),
        ("https://testserver:8443", False),
        ("null", False),
    ],
)
@pytest.mark.parametrize("path", ["/api/auth/refresh", "/api/auth/logout"])
async def test_cookie_calls_from_another_origin_are_refused_with_403(
    auth_app: BastionApp,
    account: dict[str, Any],
    sign_in: Callable[..., Awaitable[Device]],
    origin: str | None,
    allowed: bool,
    path: str,
) -> None:
    device = await sign_in(account["email"], account["password"])
    headers = _cookie(device.refresh_token)
    if origin is not None:
        headers["Origin"] = origin
    events = record_events(auth_app)
    r = await device.client.post(path, headers=headers)
    if allowed:
        assert r.status_code in (200, 204), r.text
        return
    assert r.status_code == 403, r.text
    assert not set_cookies(r, REFRESH_COOKIE)
    assert [e["event"] for e in events] == ["authz.denied"]
    # Nothing happened to the session: its refresh token is still the current one.
    assert await device.refresh() == 200


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


async def test_reusing_a_rotated_refresh_token_ends_every_session_and_flags_the_account(
    auth_app: BastionApp, account: dict[str, Any], sign_in: Callable[..., Awaitable[Device]]
) -> None:
    victim = await sign_in(account["email"], account["password"], ip="203.0.113.7")
    laptop = await sign_in(account["email"], account["password"])
    stolen = victim.refresh_token
    old_access = victim.access
    assert await victim.refresh() == 200  # the legitimate client rotates first

    events = record_events(auth_app)
    r = await victim.client.post("/api/auth/refresh", headers=_cookie(stolen))
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    (reuse,) = [e for e in events if e["event"] == "auth.refresh.reuse_detected"]
    assert reuse["ip"] == "203.0.113.7"
    assert victim.session_id in reuse["reason"]
    assert reuse["user_id"] == account["id"]

    # The new token is dead too, and so is every other session of the user.
    assert await victim.refresh() == 401
    assert await laptop.refresh() == 401
    assert await _statuses(victim, laptop) == [401, 401]
    r = await victim.client.get("/api/users/me", headers=bearer(old_access))
    assert r.status_code == 401
    assert await _admin_sees_flagged(auth_app, account["email"]) is True


async def _admin_sees_flagged(app: BastionApp, email: str) -> bool:
    async with client_for(app) as c:
        admin_email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
        await users.create_user(
            app.services.db,
            user_id=str(uuid.uuid4()),
            email=admin_email,
            name="Admin",
            password_hash=await app.services.hasher.hash(PASSWORD),
            role="admin",
            now=datetime.now(UTC),
        )
        token = await c.login(admin_email)
        r = await c.get("/api/admin/users?limit=100", headers=bearer(token))
        assert r.status_code == 200, r.text
        (row,) = [u for u in r.json()["items"] if u["email"] == email]
        return bool(row["flagged"])


@asynccontextmanager
async def _row_held(
    app: BastionApp, session_id: str
) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """On PostgreSQL, hold the session row's lock while the test fires its requests, so
    that they pile up inside the database; yields a wait for them to be there. (SQLite
    runs one statement at a time: nothing to hold.)"""
    url = app.services.settings.database_url
    if not url:

        async def nothing() -> int:
            return 0

        yield nothing
        return
    import asyncpg

    holder = await asyncpg.connect(url)
    watcher = await asyncpg.connect(url)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute(
            "SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE", uuid.UUID(session_id)
        )

        async def blocked(least: int = 2) -> int:
            for _ in range(200):
                n = await watcher.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query LIKE 'UPDATE sessions SET token_id%'"
                )
                if n >= least:
                    return int(n)
                await asyncio.sleep(0.05)
            raise AssertionError(f"only {n} rotations ever waited on the row together")

        try:
            yield blocked
        finally:
            await tx.rollback()
    finally:
        await holder.close()
        await watcher.close()


async def test_twenty_parallel_refreshes_with_one_token_let_one_through_then_kill_the_family(
    auth_app: BastionApp, account: dict[str, Any], sign_in: Callable[..., Awaitable[Device]]
) -> None:
    device = await sign_in(account["email"], account["password"])
    token, first_access = device.refresh_token, device.access
    events = record_events(auth_app)
    async with _row_held(auth_app, device.session_id) as blocked:
        racing = asyncio.gather(
            *(device.client.post("/api/auth/refresh", headers=_cookie(token)) for _ in range(20))
        )
        waiting = asyncio.ensure_future(blocked())
        done, _ = await asyncio.wait({racing, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if waiting not in done:  # every request came back while the row was held
            raise AssertionError("the rotations did not wait for the row lock")
        waiting.result()
    responses = await racing
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [401] * 19
    (winner,) = [r for r in responses if r.status_code == 200]
    assert any(e["event"] == "auth.refresh.reuse_detected" for e in events)

    # The losers presented a rotated token: reuse. The winner's family dies with it.
    device.access = winner.json()["accessToken"]
    device.refresh_token = set_cookies(winner, REFRESH_COOKIE)[0].split(";")[0].split("=", 1)[1]
    assert await device.refresh() == 401
    assert await device.me() == 401
    r = await device.client.get("/api/users/me", headers=bearer(first_access))
    assert r.status_code == 401


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


@pytest.fixture
async def two_users(
    auth_app: BastionApp, sign_in: Callable[..., Awaitable[Device]]
) -> tuple[list[Device], Device, dict[str, Any]]:
    """Three devices of one user (the first one refreshed once: an ended session must
    take its older access tokens with it) and one device of another user."""
    async with client_for(auth_app) as c:
        mine = await c.register()
        other = await c.register()
    devices = [await sign_in(mine["email"], mine["password"]) for _ in range(3)]
    assert await devices[0].refresh() == 200
    return devices, await sign_in(other["email"], other["password"]), mine


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


async def test_another_users_session_cannot_be_deleted(
    auth_app: BastionApp, two_users: tuple[list[Device], Device, dict[str, Any]]
) -> None:
    (this, _, _), stranger, _ = two_users
    events = record_events(auth_app)
    r = await stranger.client.delete(
        f"/api/auth/sessions/{this.session_id}", headers=stranger.headers
    )
    assert r.status_code == 404
    assert [e["event"] for e in events] == ["authz.denied"]
    assert await this.me() == 200
    assert await this.refresh() == 200


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
    for item in items.values():
        assert set(item) == {"id", "createdAt", "lastUsedAt", "userAgent", "ip", "current"}
    (phone_before,) = [s for s in before["items"] if s["id"] == phone.session_id]
    when = datetime.fromisoformat
    assert when(items[phone.session_id]["lastUsedAt"]) > when(phone_before["lastUsedAt"])
    assert items[phone.session_id]["createdAt"] == phone_before["createdAt"]


async def test_the_sessions_list_shows_no_one_elses_sessions(
    two_users: tuple[list[Device], Device, dict[str, Any]],
) -> None:
    (this, sibling, cousin), stranger, _ = two_users
    r = await stranger.client.get("/api/auth/sessions", headers=stranger.headers)
    assert [s["id"] for s in r.json()["items"]] == [stranger.session_id]
    r = await this.client.get("/api/auth/sessions", headers=this.headers)
    assert {s["id"] for s in r.json()["items"]} == {
        this.session_id,
        sibling.session_id,
        cousin.session_id,
    }

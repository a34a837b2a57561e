"""The ways in, and how long a session lasts unused (ASVS 5.0 V6.1.3, V6.3.2, V6.3.4,
V7.2.4, V7.3.1, V7.5.2, V7.6.2): every authentication pathway is the documented one
(SECURITY.md, "Authentication pathways"), no account exists that nobody created,
registering signs nobody in, a login replaces the browser's session, a session unused
for the refresh token's lifetime is over, and ending other sessions needs a fresh login."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.routing import APIRoute

from bastion.app import BastionApp
from bastion.db import users as user_rows
from tests.api.problem import assert_problem
from tests.auth.conftest import REFRESH_COOKIE, REFRESH_SECRET, SignIn, bearer, claims_of, forge
from tests.conftest import PASSWORD, Client, client_for

# The routes anyone may call without a credential: SECURITY.md lists exactly these.
PUBLIC = {
    ("POST", "/api/auth/register"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/refresh"),  # the refresh cookie is its credential
    ("POST", "/api/auth/logout"),  # ends the session its cookie names, if any
    ("GET", "/api/products"),
    ("GET", "/api/products/{product_id}"),
    ("POST", "/api/graphql"),  # products are public; `me` needs the Bearer token
}


def _api_routes(app: BastionApp) -> list[tuple[str, str]]:
    """Every (method, path) of the API's routers, with or without an OpenAPI entry."""
    from bastion.api.graphql import router as graphql_router
    from bastion.api.routes import admin, auth, catalogue, health, orders, users

    routers = [m.router for m in (health, auth, users, catalogue, orders, admin)]
    found = sorted(
        (method, route.path)
        for router in [*routers, graphql_router]
        for route in router.routes
        if isinstance(route, APIRoute) and route.path.startswith("/api/")
        for method in route.methods
    )
    # A router this list misses would still show in the app's own API document.
    documented = {
        (method.upper(), path)
        for path, operations in app.fastapi.openapi()["paths"].items()
        if path.startswith("/api/")
        for method in operations
    }
    assert documented <= set(found), documented - set(found)
    return found


async def test_every_api_route_but_the_documented_public_ones_needs_a_bearer_token(
    app: BastionApp, client: Client
) -> None:
    """ASVS V6.3.4: no undocumented pathway. A new route that answers without a
    credential fails here until it is added to the documented list."""
    routes = _api_routes(app)
    known = {("GET", "/api/users/me"), ("POST", "/api/orders"), ("GET", "/api/admin/users")}
    assert set(routes) >= PUBLIC | known
    for method, path in routes:
        if (method, path) in PUBLIC:
            continue
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        r = await client.request(method, url, json={} if method in {"POST", "PATCH"} else None)
        assert_problem(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer"), (method, path)


async def test_registering_signs_nobody_in(client: Client) -> None:
    """ASVS V7.6.2: a session starts only when its user logs in, never as a side effect."""
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    r = await client.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "New"}
    )
    assert r.status_code == 201
    assert "set-cookie" not in r.headers
    assert not {"accessToken", "refreshToken"} & r.json().keys()
    token = await client.login(email)
    sessions = await client.get("/api/auth/sessions", headers={"Authorization": f"Bearer {token}"})
    assert len(sessions.json()["items"]) == 1  # the login's, and no other


async def test_no_account_exists_that_nobody_created(app: BastionApp, client: Client) -> None:
    """ASVS V6.3.2: development start-up seeds a catalogue and promo codes, never an
    account: no admin/admin, no root, no demo user."""
    assert (await client.get("/api/products")).json()["items"]  # the seed ran
    assert await user_rows.list_users(app.services.db, after=None, limit=10) == []
    for email in ("admin@example.com", "admin@localhost", "root@localhost", "demo@example.com"):
        for password in ("admin", "password", "Correct-Horse-Battery-42", "bastion"):
            r = await client.post("/api/auth/login", json={"email": email, "password": password})
            assert r.status_code == 401


# ----------------------------------------------------------------- V7.3.1: idle


async def test_a_session_unused_for_the_refresh_lifetime_is_over(
    auth_app: BastionApp, sign_in: SignIn, account: dict[str, Any]
) -> None:
    """Inactivity timeout: each refresh moves the session's end to a refresh lifetime
    (7 days) from now; a session not refreshed by then cannot be refreshed again, even
    with a refresh token whose signature is still good."""
    device = await sign_in(account["email"], account["password"])
    before = await auth_app.services.db.fetchrow(
        "SELECT expires_at FROM sessions WHERE id = $1", device.session_id
    )
    assert await device.refresh() == 200
    after = await auth_app.services.db.fetchrow(
        "SELECT expires_at FROM sessions WHERE id = $1", device.session_id
    )
    assert after["expires_at"] >= before["expires_at"]  # used: it lives on
    ttl = auth_app.services.settings.refresh_ttl
    left = after["expires_at"] - datetime.now(UTC)
    assert timedelta(seconds=ttl - 10) < left <= timedelta(seconds=ttl)

    # A week passes without a refresh.
    await auth_app.services.db.execute(
        "UPDATE sessions SET expires_at = $1 WHERE id = $2",
        datetime.now(UTC) - timedelta(seconds=1),
        device.session_id,
    )
    assert await device.refresh() == 401
    async with client_for(auth_app) as client:
        token = await client.login(account["email"])
        r = await client.get("/api/auth/sessions", headers={"Authorization": f"Bearer {token}"})
    assert device.session_id not in {s["id"] for s in r.json()["items"]}


async def test_a_refresh_token_past_its_own_expiry_is_refused(
    auth_app: BastionApp, sign_in: SignIn, account: dict[str, Any]
) -> None:
    """The refresh token carries the same idle limit (``exp``): one that a live session
    still names, correctly signed, but expired, is refused."""
    device = await sign_in(account["email"], account["password"])
    claims = claims_of(device.refresh_token)
    assert claims["exp"] - claims["iat"] == auth_app.services.settings.refresh_ttl
    now = int(time.time())
    expired = forge({**claims, "iat": now - 8 * 86400, "exp": now - 1}, REFRESH_SECRET)
    r = await device.client.post(
        "/api/auth/refresh", headers={"Cookie": f"{REFRESH_COOKIE}={expired}"}
    )
    assert_problem(r, 401)
    assert await device.refresh() == 200  # the session itself was fine


# ------------------------------------------------------------ V7.2.4: a new login


async def test_a_login_ends_the_session_whose_cookie_it_carries_and_no_other(
    auth_app: BastionApp, sign_in: SignIn, account: dict[str, Any]
) -> None:
    """Re-authenticating in a browser starts a new session and ends the one it had:
    the old refresh token and access token are refused from then on. Other devices'
    sessions are not touched, and a login without a cookie ends nothing."""
    old = await sign_in(account["email"], account["password"])
    elsewhere = await sign_in(account["email"], account["password"])
    login = {"email": account["email"], "password": account["password"]}
    r = await old.client.post(
        "/api/auth/login", json=login, headers={"Cookie": f"{REFRESH_COOKIE}={old.refresh_token}"}
    )
    assert r.status_code == 200
    new_access = r.json()["accessToken"]
    assert claims_of(new_access)["sid"] != old.session_id
    old.client.cookies.clear()

    assert await old.me() == 401
    assert await old.refresh() == 401
    assert (await old.client.get("/api/users/me", headers=bearer(new_access))).status_code == 200
    assert await elsewhere.me() == 200
    assert await elsewhere.refresh() == 200
    async with client_for(auth_app) as client:
        await client.login(account["email"])  # no cookie
    assert await elsewhere.me() == 200


# ------------------------------------------- V7.5.2: ending sessions re-authenticates


async def _age_login(app: BastionApp, device: Any, minutes: int) -> None:
    """Make the login behind ``device``'s session ``minutes`` old."""
    await app.services.db.execute(
        "UPDATE sessions SET created_at = $1 WHERE id = $2",
        datetime.now(UTC) - timedelta(minutes=minutes),
        device.session_id,
    )


async def test_ending_other_sessions_needs_a_login_of_the_last_15_minutes(
    auth_app: BastionApp, sign_in: SignIn, account: dict[str, Any]
) -> None:
    """Attacker: holds a token of an old session (a stolen laptop's refresh cookie keeps
    it alive) and ends the owner's other sessions, locking them out of their own
    account while it stays in. Defence: ending any session but the caller's own needs a
    password checked in the last 15 minutes; refreshing does not count."""
    stolen = await sign_in(account["email"], account["password"])
    owner = await sign_in(account["email"], account["password"])
    await _age_login(auth_app, stolen, minutes=16)
    assert await stolen.refresh() == 200  # a refresh keeps the session, not the login, fresh

    r = await stolen.client.delete(f"/api/auth/sessions/{owner.session_id}", headers=stolen.headers)
    assert_problem(r, 403)
    assert_problem(await stolen.client.post("/api/auth/logout-all", headers=stolen.headers), 403)
    assert await owner.me() == 200
    assert await stolen.me() == 200

    # The owner signed in a minute ago: they may end the other session, and theirs lives.
    await _age_login(auth_app, owner, minutes=1)
    r = await owner.client.delete(f"/api/auth/sessions/{stolen.session_id}", headers=owner.headers)
    assert r.status_code == 204
    assert await stolen.me() == 401
    assert await owner.me() == 200


async def test_an_old_session_may_still_end_itself(
    auth_app: BastionApp, sign_in: SignIn, account: dict[str, Any]
) -> None:
    """Ending one's own session is a logout, which never needs a password."""
    device = await sign_in(account["email"], account["password"])
    await _age_login(auth_app, device, minutes=60 * 24)
    r = await device.client.delete(
        f"/api/auth/sessions/{device.session_id}", headers=device.headers
    )
    assert r.status_code == 204
    assert await device.me() == 401

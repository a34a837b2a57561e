"""/api/admin/users: the admin sees who is flagged and locked out, and can unlock them
(that nobody else can: tests/attacks/test_api5_function_level_authorization.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bastion.app import BastionApp
from bastion.db import users
from tests.api.problem import assert_problem
from tests.conftest import PASSWORD, Client, client_for

ADMIN_FIELDS = {"id", "email", "name", "role", "createdAt", "flagged", "lockedUntil"}
WRONG = "Wrong-Password-123456"


async def make_admin(app: BastionApp, client: Client) -> dict[str, str]:
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    await users.create_user(
        app.services.db,
        user_id=str(uuid.uuid4()),
        email=email,
        name="Admin",
        password_hash=await app.services.hasher.hash(PASSWORD),
        role="admin",
        now=datetime.now(UTC),
    )
    return {"Authorization": f"Bearer {await client.login(email)}"}


async def lock_out(app: BastionApp, email: str) -> None:
    for n in range(5):
        async with client_for(app, f"198.51.100.{n}") as attacker:
            r = await attacker.post("/api/auth/login", json={"email": email, "password": WRONG})
            assert r.status_code == 401


async def listed(client: Client, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    r = await client.get("/api/admin/users?limit=100", headers=headers)
    assert r.status_code == 200, r.text
    return {item["email"]: item for item in r.json()["items"]}


async def test_the_admin_sees_flagged_and_locked_out_accounts(start_app: Any) -> None:
    app = await start_app(lockout="5/15minutes")
    async with client_for(app) as client:
        admin = await make_admin(app, client)
        locked, flagged, calm = [await client.register() for _ in range(3)]
        await lock_out(app, locked["email"])
        await users.set_flagged(app.services.db, user_id=flagged["id"], flagged=True)

        items = await listed(client, admin)

    assert all(set(item) == ADMIN_FIELDS for item in items.values())
    assert not any("password" in str(item).lower() for item in items.values())
    until = datetime.fromisoformat(items[locked["email"]]["lockedUntil"].replace("Z", "+00:00"))
    assert timedelta(minutes=14) < until - datetime.now(UTC) <= timedelta(minutes=15, seconds=2)
    assert items[locked["email"]]["flagged"] is False
    assert items[flagged["email"]]["flagged"] is True
    assert items[flagged["email"]]["lockedUntil"] is None
    assert items[calm["email"]]["lockedUntil"] is None
    assert items[calm["email"]]["flagged"] is False


async def test_unlock_clears_the_lockout_and_the_flag(start_app: Any) -> None:
    app = await start_app(lockout="5/15minutes")
    async with client_for(app) as client:
        admin = await make_admin(app, client)
        user = await client.register()
        await lock_out(app, user["email"])
        await users.set_flagged(app.services.db, user_id=user["id"], flagged=True)
        login = {"email": user["email"], "password": PASSWORD}
        async with client_for(app, "203.0.113.9") as browser:
            assert (await browser.post("/api/auth/login", json=login)).status_code == 429

            r = await client.post(f"/api/admin/users/{user['id']}/unlock", headers=admin)
            assert r.status_code == 204

            item = (await listed(client, admin))[user["email"]]
            assert item["lockedUntil"] is None
            assert item["flagged"] is False
            assert (await browser.post("/api/auth/login", json=login)).status_code == 200


async def test_unlocking_an_unknown_user_is_404(client: Client, app: BastionApp) -> None:
    admin = await make_admin(app, client)
    r = await client.post(f"/api/admin/users/{uuid.uuid4()}/unlock", headers=admin)
    assert_problem(r, 404)
    assert_problem(await client.post("/api/admin/users/not-a-uuid/unlock", headers=admin), 404)


async def test_the_user_list_pages_with_a_cursor(client: Client, app: BastionApp) -> None:
    admin = await make_admin(app, client)
    for _ in range(3):
        await client.register()
    seen: list[str] = []
    cursor: str | None = None
    while True:
        url = "/api/admin/users?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url, headers=admin)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 4

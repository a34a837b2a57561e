"""A stolen access token used to guess the password behind it: the current password on
``POST /api/users/me/password`` is a password guess like a login, charged to the same
per-account lockout and per-IP auth limit, reserved before any hashing."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from bastion.db import users
from tests.conftest import PASSWORD, Client, client_for

NEW_PASSWORD = "Another-Long-Passphrase-77"


async def change(client: Client, headers: dict[str, str], current: str) -> int:
    r = await client.post(
        "/api/users/me/password",
        json={"currentPassword": current, "newPassword": NEW_PASSWORD},
        headers=headers,
    )
    return r.status_code


async def test_guesses_of_the_current_password_lock_the_account_after_five(
    start_app: Any,
) -> None:
    """Attacker: holds a victim's access token and tries current passwords until one
    works. Defence: the account's lockout counts the guesses; the sixth try is a 429
    even with the right password, and login is locked for the account too."""
    app = await start_app(lockout="5/15minutes")
    async with client_for(app, "203.0.113.7") as attacker, client_for(app, "198.51.100.9") as other:
        victim = await attacker.user()
        statuses = [
            await change(attacker, victim["headers"], f"guess-{n}-xxxxxx") for n in range(5)
        ]
        assert statuses == [400] * 5
        assert await change(attacker, victim["headers"], PASSWORD) == 429
        r = await other.post(
            "/api/auth/login", json={"email": victim["email"], "password": PASSWORD}
        )
        assert r.status_code == 429
    # The password did not change.
    row = await users.get_user(app.services.db, user_id=victim["id"])
    assert row is not None
    await app.services.hasher.verify(row["password_hash"], PASSWORD)  # raises if changed


async def test_fifty_parallel_guesses_get_exactly_five_answers(start_app: Any) -> None:
    """Attacker: fires the guesses in parallel to slip past a read-then-write count.
    Defence: each guess reserves its slot before hashing, so exactly five are judged."""
    app = await start_app(lockout="5/15minutes")
    async with client_for(app, "203.0.113.8") as attacker:
        victim = await attacker.user()
        statuses = await asyncio.gather(
            *(change(attacker, victim["headers"], f"parallel-{n}-xxxxxx") for n in range(50))
        )
    assert Counter(statuses) == {400: 5, 429: 45}


async def test_guesses_spend_the_addresss_auth_limit(start_app: Any) -> None:
    """Attacker: holds tokens of many accounts and guesses each one's password from one
    address, under every account's lockout. Defence: the per-IP auth limit."""
    app = await start_app(rate_limit_auth="3/hour")
    async with client_for(app, "203.0.113.9") as attacker:
        victims = [await attacker.user() for _ in range(2)]
        statuses = [
            await change(attacker, victims[n % 2]["headers"], f"spray-{n}-xxxxxxx")
            for n in range(4)
        ]
    assert statuses == [400, 400, 400, 429]


async def test_the_right_password_resets_the_count_and_changes_it(start_app: Any) -> None:
    """A user who mistypes and then gets it right is not left closer to a lockout."""
    app = await start_app(lockout="5/15minutes")
    async with client_for(app) as client:
        user = await client.user()
        for n in range(4):
            assert await change(client, user["headers"], f"typo-{n}-xxxxxxxx") == 400
        assert await change(client, user["headers"], PASSWORD) == 204
        for n in range(4):
            r = await client.post(
                "/api/auth/login", json={"email": user["email"], "password": f"typo-{n}-xxxxxxxx"}
            )
            assert r.status_code == 401
        assert await client.login(user["email"], NEW_PASSWORD)

"""API2:2023 Broken Authentication.

The attacker tries to be someone without their password: forged or replayed tokens,
stolen refresh tokens, answers that tell which emails have accounts, and guessing at
scale. The defences: pinned algorithms, keys and claims on every token; refresh tokens
that rotate by compare-and-set and kill their family on reuse; identical failures; and a
per-address limit, a per-account lockout and device cookies that keep real users in."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from bastion.app import BastionApp
from bastion.db import users
from tests.api.graphql.conftest import gql
from tests.api.problem import assert_problem
from tests.api.test_auth import STRONG_12, STRONG_128, _register
from tests.auth.conftest import (
    ACCESS_SECRET,
    REFRESH_COOKIE,
    REFRESH_SECRET,
    Device,
    bearer,
    forge,
    record_events,
    set_cookies,
)
from tests.auth.forgeries import ACCESS_ATTACKS, REFRESH_ATTACKS, Build, Material, case_ids
from tests.auth.test_sessions import _cookie, _statuses
from tests.conftest import ON_EVERY_STORE, PASSWORD, Client, Clients, StartApp, client_for
from tests.security.conftest import GatedArgon, install_hasher, wait_until
from tests.security.test_guard import DEVICE_COOKIE, ip, login

# ------------------------------------------------------------------- forged tokens


def _assert_rejected(r: Any, events: list[dict[str, Any]]) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["content-type"] == "application/problem+json"
    rejected = [e for e in events if e["event"] == "auth.token.rejected"]
    assert rejected, events
    assert rejected[-1]["reason"]


async def test_an_access_token_forged_with_the_right_secret_and_claims_is_accepted(
    auth_app: BastionApp, material: Material
) -> None:
    """Attacker: none yet (the control). Defence: the real secret and claims pass, so 401s count."""
    async with client_for(auth_app) as c:
        token = forge(material.access_claims, ACCESS_SECRET)
        r = await c.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("name", "build"), ACCESS_ATTACKS, ids=case_ids(ACCESS_ATTACKS))
async def test_a_forged_access_token_gets_401_and_an_event(
    auth_app: BastionApp, material: Material, name: str, build: Build
) -> None:
    """Attacker: presents a forged access token. Defence: pinned alg, key and claims; 401, event."""
    token = build(material, material.access_claims, ACCESS_SECRET)
    events = record_events(auth_app)
    async with client_for(auth_app) as c:
        r = await c.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    _assert_rejected(r, events)


async def test_a_refresh_token_forged_with_the_right_secret_and_claims_is_accepted(
    auth_app: BastionApp, material: Material
) -> None:
    """Attacker: none yet (the control). Defence: the real secret and claims pass, so 401s count."""
    token = forge(material.refresh_claims, REFRESH_SECRET)
    async with client_for(auth_app) as c:
        r = await c.post("/api/auth/refresh", headers={"Cookie": f"{REFRESH_COOKIE}={token}"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("name", "build"), REFRESH_ATTACKS, ids=case_ids(REFRESH_ATTACKS))
async def test_a_forged_refresh_token_gets_401_and_an_event_and_alarms_nobody(
    auth_app: BastionApp, material: Material, name: str, build: Build
) -> None:
    """Attacker: presents a forged refresh cookie. Defence: 401, an event; the session goes on."""
    token = build(material, material.refresh_claims, REFRESH_SECRET)
    events = record_events(auth_app)
    async with client_for(auth_app) as c:
        r = await c.post("/api/auth/refresh", headers={"Cookie": f"{REFRESH_COOKIE}={token}"})
        _assert_rejected(r, events)
        assert not any(e["event"] == "auth.refresh.reuse_detected" for e in events)
        # A forgery is not reuse: the real session goes on.
        real = await c.post(
            "/api/auth/refresh", headers={"Cookie": f"{REFRESH_COOKIE}={material.refresh}"}
        )
    assert real.status_code == 200, real.text


async def test_a_token_of_an_ended_session_is_refused(client: Client) -> None:
    """Attacker: uses an access token after logout-all. Defence: each call checks the session."""
    user = await client.user()
    assert (await gql(client, "{ me { id } }", user=user)).status_code == 200
    r = await client.post("/api/auth/logout-all", headers=user["headers"])
    assert r.status_code == 204
    assert_problem(await gql(client, "{ me { id } }", user=user), 401)


# ---------------------------------------------------------------- refresh tokens


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),
        # Development without BASTION_PUBLIC_ORIGIN: loopback pages only; an origin
        # that merely matches the Host header is another site (tests/security/test_origins.py).
        ("http://127.0.0.1:8000", True),
        ("https://testserver", False),
        ("https://evil.example", False),
        ("http://127.0.0.1.evil.example", False),
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
    """Attacker: a page on another origin posts with the cookie. Defence: Origin check, 403."""
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


async def test_reusing_a_rotated_refresh_token_ends_every_session_and_flags_the_account(
    auth_app: BastionApp, account: dict[str, Any], sign_in: Callable[..., Awaitable[Device]]
) -> None:
    """Attacker: replays a stolen, already rotated refresh token. Defence: every session ends."""
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
    """Attacker: races one refresh token 20 times. Defence: compare-and-set; one wins, all end."""
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


# ------------------------------------------------------------------- enumeration


async def test_unknown_email_and_wrong_password_fail_identically(
    app: BastionApp, client: Client
) -> None:
    """Attacker: tells unknown emails from wrong passwords. Defence: byte-identical 401s."""
    user = await client.register()
    wrong = await client.post(
        "/api/auth/login", json={"email": user["email"], "password": "Wrong-Password-123"}
    )
    unknown = await client.post(
        "/api/auth/login", json={"email": "nobody@example.com", "password": "Wrong-Password-123"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.content == unknown.content
    assert wrong.headers["content-type"] == unknown.headers["content-type"]
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"]
    assert "set-cookie" not in wrong.headers
    assert "set-cookie" not in unknown.headers


async def test_an_unknown_email_still_runs_a_password_verification(
    app: BastionApp, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attacker: times logins to find accounts. Defence: unknown emails verify a dummy hash."""
    hasher = app.services.hasher
    checked: list[str] = []
    real_check = hasher._check

    def spy(stored_hash: str, password: str) -> bool:
        checked.append(stored_hash)
        return real_check(stored_hash, password)

    monkeypatch.setattr(hasher, "_check", spy)
    r = await client.post(
        "/api/auth/login", json={"email": "ghost@example.com", "password": "Whatever-Pass-123"}
    )
    assert_problem(r, 401)
    assert len(checked) == 1
    assert checked[0].startswith("$argon2id$")


@pytest.mark.parametrize(
    "password",
    [
        STRONG_12[:11],
        STRONG_128 + "x",
        "password1234",
        "qwertyuiop123",
        "aaaaaaaaaaaaaaaa",
        "weak-person@example.com",
    ],
    ids=["11-chars", "129-chars", "common", "keyboard-walk", "repeated", "own-email"],
)
async def test_weak_passwords_are_refused_at_registration(client: Client, password: str) -> None:
    """Attacker: guesses a weak password. Defence: length and common-password rules at sign-up."""
    r = await _register(client, "weak-person@example.com", password)
    assert_problem(r, 400, "#/password")
    login = await client.post(
        "/api/auth/login", json={"email": "weak-person@example.com", "password": password}
    )
    assert_problem(login, 401)


# -------------------------------------------------- credential stuffing, brute force


@pytest.mark.parametrize("backend", ON_EVERY_STORE, indirect=True)
async def test_fifty_parallel_wrong_passwords_from_one_ip_get_exactly_ten_401_and_forty_429(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: 50 guesses at once from one address. Defence: the limit counts first; 10 pass."""
    app = await start_guarded(rate_limit_auth="10/hour", lockout="5/15minutes")
    argon = GatedArgon(closed=True)
    hasher = await install_hasher(app, argon, concurrency=2, queue=64)
    client = clients(app, ip(1))
    tasks = [asyncio.create_task(login(client, f"stuffed-{i}@example.com")) for i in range(50)]
    try:
        # Every attempt is in flight at once: ten hold a slot and wait on the hasher
        # while the other forty have been refused. A limit that checked first and
        # counted after the hash would have let all fifty through to here.
        await wait_until(
            lambda: hasher.running + hasher.waiting == 10 and sum(t.done() for t in tasks) == 40,
            "10 attempts at the hasher and 40 refused",
        )
    finally:
        argon.gate.set()
    responses = await asyncio.gather(*tasks)
    assert Counter(r.status_code for r in responses) == {401: 10, 429: 40}
    assert argon.verifies == 10
    assert all(int(r.headers["retry-after"]) >= 1 for r in responses if r.status_code == 429)


async def test_the_eleventh_failure_is_refused_even_with_the_right_password(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: guesses on after ten failures. Defence: the per-address auth limit, 429."""
    app = await start_guarded(rate_limit_auth="10/hour")
    client = clients(app, ip(1))
    user = await client.register()
    for _ in range(10):
        assert (await login(client, f"other-{_}@example.com")).status_code == 401
    r = await login(client, user["email"], PASSWORD)
    assert r.status_code == 429
    assert 3500 <= int(r.headers["retry-after"]) <= 3600
    # Another address is not affected.
    assert (await login(clients(app, ip(2)), user["email"], PASSWORD)).status_code == 200


async def test_five_failures_from_five_addresses_lock_the_account(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: spreads guesses at one account over addresses. Defence: lockout after five."""
    app = await start_guarded(rate_limit_auth="10/hour", lockout="5/15minutes")
    events = record_events(app)
    user = await clients(app, ip(200)).register()
    for n in range(5):
        assert (await login(clients(app, ip(n)), user["email"])).status_code == 401
    r = await login(clients(app, ip(6)), user["email"], PASSWORD)
    assert r.status_code == 429
    assert 890 <= int(r.headers["retry-after"]) <= 900
    assert r.headers["content-type"] == "application/problem+json"
    lockouts = [e for e in events if e["event"] == "auth.lockout"]
    assert [e["reason"] for e in lockouts] == ["account locked", "account locked"]
    assert lockouts[0]["user_id"] == user["id"]


async def test_unknown_emails_lock_out_exactly_like_real_ones(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: finds accounts by how lockout behaves. Defence: unknown emails lock out alike."""
    app = await start_guarded(lockout="5/15minutes")
    real = (await clients(app, ip(200)).register())["email"]
    answers: dict[str, list[tuple[int, Any]]] = {}
    for email in (real, "nobody-here@example.com"):
        answers[email] = []
        for n in range(7):
            r = await login(clients(app, ip(n)), email)
            answers[email].append((r.status_code, r.json()["detail"]))
    assert answers[real] == answers["nobody-here@example.com"]
    assert [status for status, _ in answers[real]] == [401] * 5 + [429] * 2


def fullwidth(text: str) -> str:
    """``"ab@c"`` in fullwidth forms (U+FF01..U+FF5E), which NFKC folds back to ASCII."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@pytest.mark.parametrize(
    "variants",
    [
        pytest.param([" Alice@EXAMPLE.com ", "ALICE@example.com", "alice@Example.COM "], id="case"),
        pytest.param(
            [fullwidth("alice@example.com"), fullwidth("ALICE") + "@example.com"], id="fullwidth"
        ),
        pytest.param(["\talice@example.com\n", "alice@example.com\u3000"], id="whitespace"),
    ],
)
async def test_variants_of_an_email_share_one_lockout(
    start_guarded: StartApp, clients: Clients, variants: list[str]
) -> None:
    """Attacker: dodges the lockout with variants of the email. Defence: emails are normalised."""
    app = await start_guarded(lockout="5/15minutes")
    await clients(app, ip(200)).register(email="alice@example.com")
    for n in range(5):
        r = await login(clients(app, ip(n)), variants[n % len(variants)])
        assert r.status_code == 401
    for email in ["alice@example.com", *variants]:
        assert (await login(clients(app, ip(9)), email, PASSWORD)).status_code == 429


@pytest.mark.parametrize("backend", ON_EVERY_STORE, indirect=True)
async def test_fifty_parallel_guesses_from_fifty_addresses_get_exactly_five_answers(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: 50 guesses at one account from 50 addresses. Defence: lockout counts first; 5."""
    app = await start_guarded(lockout="5/15minutes")
    email = (await clients(app, ip(200)).register())["email"]
    argon = GatedArgon(closed=True)
    hasher = await install_hasher(app, argon, concurrency=2, queue=64)
    tasks = [asyncio.create_task(login(clients(app, ip(n)), email)) for n in range(50)]
    try:
        await wait_until(
            lambda: hasher.running + hasher.waiting == 5 and sum(t.done() for t in tasks) == 45,
            "5 attempts at the hasher and 45 refused",
        )
    finally:
        argon.gate.set()
    responses = await asyncio.gather(*tasks)
    assert Counter(r.status_code for r in responses) == {401: 5, 429: 45}


async def _returning_user(app: BastionApp, clients: Clients) -> tuple[dict[str, Any], Client]:
    """A user and the browser they signed in with before (it holds a device cookie)."""
    browser = clients(app, ip(100))
    user = await browser.register()
    assert (await login(browser, user["email"], PASSWORD)).status_code == 200
    assert browser.cookies.get(DEVICE_COOKIE, path="/api/auth")
    return user, browser


async def _lock_out(app: BastionApp, clients: Clients, email: str) -> None:
    for n in range(5):
        assert (await login(clients(app, ip(n)), email)).status_code == 401
    assert (await login(clients(app, ip(9)), email, PASSWORD)).status_code == 429


async def test_a_device_cookie_is_not_refused_for_failures_made_elsewhere(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: locks the victim out. Defence: the victim's device cookie still signs them in."""
    app = await start_guarded(lockout="5/15minutes", rate_limit_auth="10/hour")
    user, browser = await _returning_user(app, clients)
    await _lock_out(app, clients, user["email"])
    # Even the attacker's own address may not refuse it: it is charged to the device.
    for n in range(12):
        await login(clients(app, ip(100)), f"spray-{n}@example.com")
    r = await login(browser, user["email"], PASSWORD)
    assert r.status_code == 200
    assert "accessToken" in r.json()
    # ... and the account stays locked for everyone else.
    assert (await login(clients(app, ip(7)), user["email"], PASSWORD)).status_code == 429


async def test_a_device_cookie_counts_its_own_failures_against_itself_alone(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: guesses through a device cookie. Defence: the device locks out on its own."""
    app = await start_guarded(lockout="5/15minutes")
    events = record_events(app)
    user, browser = await _returning_user(app, clients)
    statuses = [(await login(browser, user["email"])).status_code for _ in range(5)]
    assert statuses == [401] * 5
    r = await login(browser, user["email"], PASSWORD)
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 890
    assert "device locked" in [e["reason"] for e in events if e["event"] == "auth.lockout"]
    # The device's failures did not lock the account: another browser signs in.
    assert (await login(clients(app, ip(7)), user["email"], PASSWORD)).status_code == 200


async def test_a_device_cookie_of_another_account_is_not_trusted(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: uses their device cookie on a victim's account. Defence: it names its user."""
    app = await start_guarded(lockout="5/15minutes")
    _, browser = await _returning_user(app, clients)
    victim = await clients(app, ip(200)).register()
    await _lock_out(app, clients, victim["email"])
    assert (await login(browser, victim["email"], PASSWORD)).status_code == 429


def _tampered(token: str) -> str:
    head, payload, signature = token.split(".")
    return f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"


@pytest.mark.parametrize("forgery", ["tampered", "access token", "refresh token", "garbage"])
async def test_a_forged_device_cookie_is_ignored(
    start_guarded: StartApp, clients: Clients, forgery: str
) -> None:
    """Attacker: forges a device cookie to skip the lockout. Defence: unverified, it is ignored."""
    app = await start_guarded(lockout="5/15minutes")
    user, browser = await _returning_user(app, clients)
    device = browser.cookies.get(DEVICE_COOKIE, path="/api/auth")
    access = (await login(clients(app, ip(50)), user["email"], PASSWORD)).json()["accessToken"]
    refresh = browser.cookies.get("__Secure-refreshToken", path="/api/auth")
    value = {
        "tampered": _tampered(device),
        "access token": access,
        "refresh token": refresh,
        "garbage": "not-a-token",
    }[forgery]
    await _lock_out(app, clients, user["email"])
    attacker = clients(app, ip(60))
    attacker.cookies.set(DEVICE_COOKIE, value, domain="testserver", path="/api/auth")
    assert (await login(attacker, user["email"], PASSWORD)).status_code == 429


# ------------------------------------- guessing the password behind a stolen token
# POST /api/users/me/password checks the current password: a guess like a login, charged
# to the same lockout and auth limit, reserved before any hashing.

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

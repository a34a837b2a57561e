"""Password guessing, attacked on both store backends: the per-IP auth limit, the
per-account lockout, and device cookies that keep the real user out of the lockout."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bastion.app import BastionApp
from tests.conftest import PASSWORD, Client
from tests.security.conftest import (
    WRONG,
    GatedArgon,
    StartApp,
    install_hasher,
    record_events,
    wait_until,
)

Clients = Callable[[BastionApp, str], Client]
DEVICE_COOKIE = "__Secure-deviceToken"
UNLIMITED = "1000000/hour"


async def login(client: Client, email: str, password: str = WRONG) -> httpx.Response:
    return await client.post("/api/auth/login", json={"email": email, "password": password})


def ip(n: int) -> str:
    return f"198.51.100.{n}"


def fullwidth(text: str) -> str:
    """``"ab@c"`` in fullwidth forms (U+FF01..U+FF5E), which NFKC folds back to ASCII."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# ---------------------------------------------------------------------------- auth limit


async def test_fifty_parallel_wrong_passwords_from_one_ip_get_exactly_ten_401_and_forty_429(
    start_guarded: StartApp, clients: Clients
) -> None:
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


async def test_successful_logins_never_count_toward_the_auth_limit(
    start_guarded: StartApp, clients: Clients
) -> None:
    app = await start_guarded(rate_limit_auth="10/hour")
    client = clients(app, ip(1))
    user = await client.register()
    for _ in range(30):
        client.cookies.clear()  # no device cookie: each success is charged to the address
        assert (await login(client, user["email"], PASSWORD)).status_code == 200
    statuses = [(await login(client, f"x{n}@example.com")).status_code for n in range(11)]
    assert statuses == [401] * 10 + [429]


async def test_registration_failures_count_and_successes_do_not(
    start_guarded: StartApp, clients: Clients
) -> None:
    app = await start_guarded(rate_limit_auth="3/hour")
    client = clients(app, ip(1))
    taken = (await client.register())["email"]
    for _ in range(5):
        await client.register()
    body = {"email": taken, "password": PASSWORD, "name": "Again"}
    weak = {"email": "weak@example.com", "password": "password1234", "name": "Weak"}
    statuses = [
        (await client.post("/api/auth/register", json=b)).status_code for b in (body, weak, body)
    ]
    assert statuses == [409, 400, 409]
    fresh = {"email": "fresh@example.com", "password": PASSWORD, "name": "Fresh"}
    assert (await client.post("/api/auth/register", json=fresh)).status_code == 429


# ------------------------------------------------------------------------------- lockout


async def test_five_failures_from_five_addresses_lock_the_account(
    start_guarded: StartApp, clients: Clients
) -> None:
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
    app = await start_guarded(lockout="5/15minutes")
    await clients(app, ip(200)).register(email="alice@example.com")
    for n in range(5):
        r = await login(clients(app, ip(n)), variants[n % len(variants)])
        assert r.status_code == 401
    for email in ["alice@example.com", *variants]:
        assert (await login(clients(app, ip(9)), email, PASSWORD)).status_code == 429


async def test_a_success_resets_the_lockout_count(
    start_guarded: StartApp, clients: Clients
) -> None:
    app = await start_guarded(lockout="5/15minutes")
    client = clients(app, ip(1))
    user = await clients(app, ip(200)).register()
    email = user["email"]
    for _ in range(2):
        assert [(await login(client, email)).status_code for _ in range(4)] == [401] * 4
        # Log in from a browser with no device cookie: the account's own count resets.
        fresh = clients(app, ip(2))
        assert (await login(fresh, email, PASSWORD)).status_code == 200
    assert [(await login(client, email)).status_code for _ in range(6)] == [401] * 5 + [429]


async def test_fifty_parallel_guesses_from_fifty_addresses_get_exactly_five_answers(
    start_guarded: StartApp, clients: Clients
) -> None:
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


async def test_a_refused_attempt_never_reaches_the_hasher(
    start_guarded: StartApp, clients: Clients
) -> None:
    app = await start_guarded(rate_limit_auth="3/hour", lockout="2/15minutes")
    argon = GatedArgon()
    await install_hasher(app, argon)
    locked, limited = clients(app, ip(1)), clients(app, ip(2))
    statuses = [(await login(locked, "victim@example.com")).status_code for _ in range(2)]
    statuses += [(await login(limited, f"x{n}@example.com")).status_code for n in range(3)]
    assert statuses == [401] * 5
    assert argon.verifies == 5
    for _ in range(10):
        assert (await login(locked, "victim@example.com", PASSWORD)).status_code == 429
        assert (await login(limited, "someone@example.com")).status_code == 429
    assert argon.verifies == 5


# ---------------------------------------------------------------------------- device cookies


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


async def test_the_device_cookie_is_signed_http_only_and_scoped_to_auth(
    start_guarded: StartApp, clients: Clients
) -> None:
    app = await start_guarded()
    client = clients(app, ip(1))
    user = await client.register()
    r = await login(client, user["email"], PASSWORD)
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(DEVICE_COOKIE))
    attributes = {a.strip().split("=")[0].lower(): a for a in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite", "path", "max-age"} <= set(attributes)
    assert attributes["samesite"].strip().lower() == "samesite=strict"
    assert attributes["path"].strip() == "Path=/api/auth"
    token = cookie.split(";")[0].split("=", 1)[1]
    claims = app.services.device.verify(token)
    assert claims["typ"] == "device"
    assert claims["sub"] == user["id"]
    assert user["email"] not in token

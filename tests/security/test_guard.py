"""Password guessing on both store backends: the per-IP auth limit, the per-account
lockout, and device cookies that keep the real user out of the lockout. The guessing
attacks are in tests/attacks/test_api2_broken_authentication.py; here, what they must not
spoil (successes never count, a success resets, a refusal costs no hash)."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import httpx

from bastion.security.guard import AttemptGuard
from tests.conftest import PASSWORD, Client, Clients, StartApp
from tests.security.conftest import WRONG, GatedArgon, install_hasher

DEVICE_COOKIE = "__Secure-deviceToken"
UNLIMITED = "1000000/hour"


async def login(client: Client, email: str, password: str = WRONG) -> httpx.Response:
    return await client.post("/api/auth/login", json={"email": email, "password": password})


def ip(n: int) -> str:
    return f"198.51.100.{n}"


# ---------------------------------------------------------------------------- auth limit


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


async def test_a_dump_of_the_store_names_no_account_a_guess_could_recompute(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: copies the store (a Redis dump) and hashes guessed emails to see which
    ones were attacked or locked. Defence: account keys are a digest keyed with a
    secret of the deployment."""
    app = await start_guarded(lockout="5/15minutes")
    assert (await login(clients(app, ip(1)), "victim@example.com")).status_code == 401
    guard = app.services.guard
    key = guard.account_key("victim@example.com")
    assert (await guard.store.peek(key, limit=5)).count == 1  # the failure is counted there
    unkeyed = hashlib.blake2s(b"victim@example.com", digest_size=16).hexdigest()
    assert unkeyed not in key
    elsewhere = AttemptGuard(guard.store, replace(guard.config, key=b"another deployment"))
    assert elsewhere.account_key("victim@example.com") != key

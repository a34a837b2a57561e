"""How an ended session's access tokens are refused: through the revocation flag that
the global rate limiter reads in its own store round trip, and from the database
whenever the flags may be incomplete (the store lost them, was down, or a write
failed). A token of an ended session is never taken for live again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bastion.app import BastionApp
from bastion.security.sessions import SYNC_MARKER
from bastion.security.sessions import flag_key as revoked_key
from bastion.store import StoreUnavailable
from tests.auth.conftest import SECRETS, Device, refresh_cookie_of
from tests.conftest import PASSWORD, REDIS_URL, client_for


async def _logout(device: Device) -> None:
    r = await device.client.post(
        "/api/auth/logout", headers={"Cookie": f"__Secure-refreshToken={device.refresh_token}"}
    )
    assert r.status_code == 204


def _synced(app: BastionApp) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return app.services.revocations.synced

    return check


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait (bounded) for a background task to get somewhere."""
    for _ in range(100):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def _fail_for(
    monkeypatch: pytest.MonkeyPatch, store: Any, method: str, when: Callable[..., bool]
) -> list[tuple[Any, ...]]:
    """Make ``store.<method>`` raise StoreUnavailable for calls that ``when`` picks (other
    stores of the same class, like the limiter's fallback, are left alone)."""
    original = getattr(type(store), method)
    failed: list[tuple[Any, ...]] = []

    async def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self is store and when(*args, **kwargs):
            failed.append(args)
            raise StoreUnavailable("test: store down")
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(type(store), method, patched)
    return failed


async def test_the_revocation_check_rides_on_the_rate_limiters_round_trip(
    auth_app: BastionApp,
    account: dict[str, Any],
    sign_in: Callable[..., Awaitable[Device]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    device = await sign_in(account["email"], account["password"])
    await _until(_synced(auth_app), "revocations synced")
    store = auth_app.services.store
    calls: list[tuple[str, Any]] = []
    for name in ("hit", "has_flag", "set_flag", "peek"):
        original = getattr(type(store), name)

        def counting(original: Any = original, name: str = name) -> Any:
            async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
                if self is store and args[:1] != (SYNC_MARKER,):  # the sync loop's own check
                    calls.append((name, kwargs.get("check_flag")))
                return await original(self, *args, **kwargs)

            return call

        monkeypatch.setattr(type(store), name, counting())
    reads: list[str] = []
    rows = auth_app.services.sessions.store
    original_get = rows.get

    async def get_session(session_id: str) -> Any:
        reads.append(session_id)
        return await original_get(session_id)

    monkeypatch.setattr(rows, "get", get_session)

    assert await device.me() == 200
    assert calls == [("hit", revoked_key(device.session_id))]
    assert reads == []
    await _logout(device)
    calls.clear()
    assert await device.me() == 401
    assert calls == [("hit", revoked_key(device.session_id))]
    assert reads == []


async def test_an_ended_session_stays_ended_when_the_service_restarts_with_an_empty_store(
    start_app: Any, auth_app: BastionApp, account: dict[str, Any], sign_in: Any
) -> None:
    ended: Device = await sign_in(account["email"], account["password"])
    live: Device = await sign_in(account["email"], account["password"])
    await _logout(ended)
    if REDIS_URL:  # a Redis restarted without persistence
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL)
        await client.flushdb()
        await client.aclose()
    restarted: BastionApp = await start_app(**SECRETS)  # same database, fresh store
    async with client_for(restarted) as c:
        statuses = [await Device(c, d.access, d.refresh_token).me() for d in (ended, live)]
    assert statuses == [401, 200]
    assert await restarted.services.store.has_flag(revoked_key(ended.session_id))


async def test_a_running_service_rewrites_the_flags_a_restarted_redis_lost(
    start_app: Any, shared_redis_url: str
) -> None:
    """On Redis in every pass (this run's, or a private one): Redis restarted without
    persistence (its db emptied); the running service notices and rewrites the flags."""
    import redis.asyncio as aioredis

    app: BastionApp = await start_app(**SECRETS, redis_url=shared_redis_url)
    async with client_for(app) as c:
        account = await c.register()
        r = await c.post("/api/auth/login", json={"email": account["email"], "password": PASSWORD})
        assert r.status_code == 200, r.text
        c.cookies.clear()  # the device sends its cookie explicitly
        ended = Device(c, r.json()["accessToken"], refresh_cookie_of(r))
        await _logout(ended)
        store = app.services.store
        client = aioredis.Redis.from_url(shared_redis_url)
        await client.flushdb()
        await client.aclose()
        assert not await store.has_flag(revoked_key(ended.session_id))
        await _until(lambda: store.has_flag(SYNC_MARKER), "the sync loop noticed the flush")
        assert await store.has_flag(revoked_key(ended.session_id))
        assert await ended.me() == 401


async def test_a_session_ended_while_the_store_fails_stays_ended_and_is_flagged_later(
    auth_app: BastionApp,
    account: dict[str, Any],
    sign_in: Callable[..., Awaitable[Device]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ended = await sign_in(account["email"], account["password"])
    live = await sign_in(account["email"], account["password"])
    store = auth_app.services.store
    failed = _fail_for(monkeypatch, store, "set_flag", lambda key, **_: key != SYNC_MARKER)
    await _logout(ended)
    assert failed == [(revoked_key(ended.session_id),)]
    assert auth_app.services.revocations.synced is False
    # The flag is missing, yet the token is refused: the process reads the row instead.
    assert not await store.has_flag(revoked_key(ended.session_id))
    assert [await ended.me(), await live.me()] == [401, 200]

    monkeypatch.undo()  # the store is back: the sync loop writes the missing flag
    await _until(lambda: store.has_flag(revoked_key(ended.session_id)), "the flag is written")
    await _until(_synced(auth_app), "revocations synced")
    assert [await ended.me(), await live.me()] == [401, 200]


async def test_while_the_store_is_unreachable_ended_sessions_stay_ended(
    auth_app: BastionApp,
    account: dict[str, Any],
    sign_in: Callable[..., Awaitable[Device]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ended = await sign_in(account["email"], account["password"])
    live = await sign_in(account["email"], account["password"])
    await _logout(ended)
    store = auth_app.services.store
    for method in ("hit", "has_flag"):
        _fail_for(monkeypatch, store, method, lambda *a, **k: True)
    assert [await ended.me(), await live.me()] == [401, 200]

"""A session's absolute lifetime (ASVS 5.0 V7.3.2): it ends ``BASTION_SESSION_MAX_AGE``
after its login however often it is refreshed. Neither the refresh cookie nor any
token outlives that end; a refresh after it is refused (401) with a security event of
its own reason; the sessions list shows it; it is stored with the session at login, so
changing the setting later moves no session's end.

Time is moved on the sessions' clock (the refresh token codec's), never slept through.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bastion.app import BastionApp
from bastion.security.sessions import SESSION_ENDED
from bastion.security.tokens import TokenCodec
from tests.auth.conftest import (
    REFRESH_COOKIE,
    SECRETS,
    bearer,
    claims_of,
    record_events,
    refresh_cookie_of,
    set_cookies,
)
from tests.conftest import Client, Clock, StartApp, client_for

DAY = 86400
LIFETIME = {"session_max_age": "3d", "refresh_ttl": "1d"}


def install_clock(app: BastionApp) -> Clock:
    """Move the app's sessions (and their refresh tokens) onto a test clock."""
    clock = Clock()
    codec = app.services.refresh
    app.services.refresh = TokenCodec(dataclasses.replace(codec.config, clock=clock))
    return clock


async def _login(client: Client) -> tuple[dict[str, Any], str]:
    user = await client.register()
    r = await client.post(
        "/api/auth/login", json={"email": user["email"], "password": user["password"]}
    )
    assert r.status_code == 200, r.text
    client.cookies.clear()  # each refresh sends its cookie explicitly
    return {**user, "access": r.json()["accessToken"]}, refresh_cookie_of(r)


async def _refresh(client: Client, token: str) -> httpx.Response:
    r = await client.post("/api/auth/refresh", headers={"Cookie": f"{REFRESH_COOKIE}={token}"})
    client.cookies.clear()
    return r


def _max_age(response: httpx.Response) -> int:
    (cookie,) = set_cookies(response, REFRESH_COOKIE)
    match = re.search(r"Max-Age=(\d+)", cookie)
    assert match is not None, cookie
    return int(match.group(1))


async def _expires_at(client: Client, access: str) -> datetime:
    r = await client.get("/api/auth/sessions", headers=bearer(access))
    assert r.status_code == 200, r.text
    (item,) = r.json()["items"]
    return datetime.fromisoformat(item["expiresAt"])


def _end(expires_at: datetime, token: str) -> int:
    """The session's end as the list shows it: 3 days after the login (read off the
    clock a moment before its token's ``iat``)."""
    end = int(expires_at.timestamp())
    assert expires_at == datetime.fromtimestamp(end, UTC)  # whole seconds, as ``exp``
    assert 0 <= claims_of(token)["iat"] + 3 * DAY - end <= 1
    return end


async def test_a_session_ends_at_its_max_age_however_often_it_is_refreshed(
    start_app: StartApp,
) -> None:
    """Attacker: holds a stolen refresh token and refreshes it before each expiry, to
    keep the session alive for ever. Defence: the session ends 3 days (its max age)
    after the login; the last tokens before it are cut to it, the refresh after it is
    refused and logged as the end of the session's lifetime."""
    app = await start_app(**SECRETS, **LIFETIME)
    clock = install_clock(app)
    events = record_events(app)
    async with client_for(app) as client:
        user, token = await _login(client)
        end = _end(await _expires_at(client, user["access"]), token)
        for hours in (20, 20, 20):  # 60 h in: 12 h of the session left
            clock.advance(hours * 3600)
            r = await _refresh(client, token)
            assert r.status_code == 200, r.text
            token = refresh_cookie_of(r)
            refresh, access = claims_of(token), claims_of(r.json()["accessToken"])
            assert refresh["exp"] == min(refresh["iat"] + DAY, end)
            assert _max_age(r) == refresh["exp"] - refresh["iat"]
            assert access["exp"] <= end
            assert r.json()["expiresIn"] == access["exp"] - access["iat"]
        assert abs(_max_age(r) - 12 * 3600) <= 1
        assert claims_of(token)["exp"] == end
        # The session list shows the same end, whatever the refreshes did.
        assert await _expires_at(client, user["access"]) == datetime.fromtimestamp(end, UTC)

        clock.advance(12 * 3600 + 1)
        r = await _refresh(client, token)
    assert r.status_code == 401
    assert r.json()["detail"] == "The session has ended; sign in again."
    assert set_cookies(r, REFRESH_COOKIE)[0].startswith(f"{REFRESH_COOKIE}=;")
    rejected = [e for e in events if e["event"] == "auth.token.rejected"]
    assert [e["reason"] for e in rejected] == [SESSION_ENDED]
    assert rejected[0]["user_id"] == user["id"]


async def test_a_live_token_of_a_session_past_its_end_is_refused(
    start_app: StartApp,
) -> None:
    """A refresh token that still has time (one issued before sessions had an end, cut
    to it by the migration only in the database) is refused once its session has
    ended, with the same reason."""
    app = await start_app(**SECRETS, **LIFETIME)
    events = record_events(app)
    async with client_for(app) as client:
        _, token = await _login(client)
        sid = claims_of(token)["sid"]
        await app.services.db.execute(
            "UPDATE sessions SET ends_at = $2 WHERE id = $1",
            sid,
            datetime.now(UTC) - timedelta(seconds=1),
        )
        r = await _refresh(client, token)
    assert r.status_code == 401
    reasons = [e["reason"] for e in events if e["event"] == "auth.token.rejected"]
    assert reasons == [SESSION_ENDED]


async def test_a_token_expired_before_its_sessions_end_is_not_called_the_end(
    start_app: StartApp,
) -> None:
    """Not refreshed within the refresh TTL, a session's token expires while the
    session still had time: that is the plain expiry, not the lifetime's end."""
    app = await start_app(**SECRETS, **LIFETIME)
    clock = install_clock(app)
    events = record_events(app)
    async with client_for(app) as client:
        _, token = await _login(client)
        clock.advance(DAY + 1)
        r = await _refresh(client, token)
    assert r.status_code == 401
    reasons = [e["reason"] for e in events if e["event"] == "auth.token.rejected"]
    assert reasons == ["token expired"]


async def test_the_end_is_stored_at_login_so_a_later_setting_moves_no_session(
    start_app: StartApp,
) -> None:
    """The operator raises the max age from 3 to 30 days and restarts: sessions that
    started under 3 days still end after 3 days."""
    first = await start_app(**SECRETS, **LIFETIME)
    async with client_for(first) as client:
        user, token = await _login(client)
        end = _end(await _expires_at(client, user["access"]), token)
    later = await start_app(**SECRETS, refresh_ttl="1d", session_max_age="30d")
    clock = install_clock(later)
    async with client_for(later) as client:
        assert await _expires_at(client, user["access"]) == datetime.fromtimestamp(end, UTC)
        for _ in range(3):  # refreshed within its TTL each time: 2.7 days in
            clock.advance(0.9 * DAY)
            r = await _refresh(client, token)
            assert r.status_code == 200, r.text
            token = refresh_cookie_of(r)
        assert claims_of(token)["exp"] == end
        clock.advance(end - clock() + 1)
        assert (await _refresh(client, token)).status_code == 401

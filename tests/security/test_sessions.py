"""Refresh-token sessions as a layer piece, attacked on every session store (memory,
SQLite, PostgreSQL) and every flag store (memory, Redis): a rotated-away token never
works again, racing rotations have one winner, reuse ends the family, an end takes
effect at once and in every process, a flushed flag store is rewritten and never
makes an ended session live, and no session outlives its absolute end."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bastion.security import (
    IssuedTokens,
    MemorySessionStore,
    RefreshRefused,
    RefreshReused,
    RefreshSessions,
    SessionConfig,
    SessionStore,
    SqlSessionStore,
)
from bastion.security.exceptions import ExpiredToken, InvalidToken
from bastion.security.secret import Secret
from bastion.security.sessions import SESSION_ENDED, SYNC_MARKER, flag_key
from bastion.security.tokens import TokenCodec, TokenConfig
from bastion.store import MemoryStore, Store, StoreUnavailable, open_store
from tests.conftest import Clock, flush_redis

DAY = 86400
SYNC = 0.1  # the sync interval of these tests, in seconds


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def session_url(request: pytest.FixtureRequest, tmp_path: Any) -> str | None:
    """Where the sessions live: ``None`` (in memory), a SQLite file or PostgreSQL."""
    if request.param == "memory":
        return None
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/sessions.db"
    # Requested here, outside the event loop: the server's setup runs a loop of its own.
    return str(request.getfixturevalue("shared_postgres_url"))


@pytest.fixture
async def session_store(session_url: str | None) -> AsyncIterator[SessionStore]:
    if session_url is None:
        yield MemorySessionStore()
        return
    # A table of its own: the service's tests may share the database.
    store = await SqlSessionStore.open(session_url, table=f"sessions_{secrets.token_hex(4)}")
    await store.create_schema()
    yield store
    await store.connection.execute(f"DROP TABLE {store.table}")
    await store.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def flag_url(request: pytest.FixtureRequest) -> str | None:
    """Where the flags live: ``None`` (in memory) or Redis."""
    if request.param == "memory":
        return None
    return str(request.getfixturevalue("shared_redis_url"))


@pytest.fixture
async def flags(flag_url: str | None) -> AsyncIterator[Store]:
    if flag_url is not None:
        await flush_redis(flag_url)
    store = open_store(flag_url)
    yield store
    await store.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


Make = Callable[..., RefreshSessions]


@pytest.fixture
def make(session_store: SessionStore, flags: Store, clock: Clock) -> Make:
    """A :class:`RefreshSessions` on the shared stores; each call is another process."""
    secret = [Secret(secrets.token_bytes(32))]

    def codec(typ: str, ttl: int, key: list[Secret]) -> TokenCodec:
        return TokenCodec(
            TokenConfig(typ=typ, keys=key, issuer="test", audience="test", ttl=ttl, clock=clock)
        )

    access_key, refresh_key = secret, [Secret(secrets.token_bytes(32))]

    def build(**config: Any) -> RefreshSessions:
        settings = SessionConfig(**{"sync_interval": SYNC, **config})
        return RefreshSessions(
            session_store,
            flags,
            access=codec("access", settings.access_ttl, access_key),
            refresh=codec("refresh", settings.refresh_ttl, refresh_key),
            config=settings,
        )

    return build


@pytest.fixture
async def sessions(make: Make) -> AsyncIterator[RefreshSessions]:
    running = make()
    async with running.running():
        yield running


def _synced(sessions: RefreshSessions, state: bool = True) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return sessions.synced is state

    return check


async def _until(condition: Callable[[], Awaitable[bool]], what: str, within: float) -> float:
    """Wait for ``condition`` at most ``within`` seconds; how long it took."""
    start = time.monotonic()
    while not await condition():
        if time.monotonic() - start > within:
            raise AssertionError(f"never happened within {within} s: {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def test_rotation_gives_new_tokens_and_the_old_one_is_refused(
    sessions: RefreshSessions,
) -> None:
    first = await sessions.start("user-1", user_agent="test", ip="203.0.113.7")
    second = await sessions.rotate(first.refresh_token, ip="203.0.113.8")
    assert second.session_id == first.session_id
    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    assert (await sessions.authenticate(second.access_token))["sub"] == "user-1"
    with pytest.raises(InvalidToken):
        await sessions.rotate(first.refresh_token)
    assert await sessions.list("user-1") == []  # the old token's reuse ended the session


async def test_how_the_login_was_authenticated_is_kept_through_refreshes(
    sessions: RefreshSessions,
) -> None:
    password_only = await sessions.start("user-1")
    with_code = await sessions.start("user-1", amr=("pwd", "otp"))
    await sessions.rotate(with_code.refresh_token)
    stored = {s.id: s.amr for s in await sessions.list("user-1")}
    assert stored == {password_only.session_id: ("pwd",), with_code.session_id: ("pwd", "otp")}


async def test_twenty_concurrent_rotations_of_one_token_give_exactly_one_success(
    sessions: RefreshSessions,
) -> None:
    issued = await sessions.start("user-1")
    results = await asyncio.gather(
        *(sessions.rotate(issued.refresh_token) for _ in range(20)), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, IssuedTokens)]
    assert len(winners) == 1
    assert all(isinstance(r, InvalidToken) for r in results if r not in winners)


async def test_reuse_of_a_rotated_away_token_ends_the_whole_family(
    sessions: RefreshSessions,
) -> None:
    stolen = await sessions.start("user-1")
    other = await sessions.start("user-1")
    newest = await sessions.rotate(stolen.refresh_token)  # the victim (or thief) moved on
    with pytest.raises(RefreshReused) as raised:
        await sessions.rotate(stolen.refresh_token)
    assert (raised.value.session_id, raised.value.user_id) == (stolen.session_id, "user-1")
    # The newest token dies too, and so does its access token, at once.
    with pytest.raises(InvalidToken):
        await sessions.rotate(newest.refresh_token)
    with pytest.raises(InvalidToken, match="session revoked"):
        await sessions.authenticate(newest.access_token)
    # Another family of the user is not this one: the caller decides about it.
    assert (await sessions.authenticate(other.access_token))["sid"] == other.session_id
    assert [s.id for s in await sessions.list("user-1")] == [other.session_id]


async def test_logout_kills_the_access_token_at_once(sessions: RefreshSessions) -> None:
    issued = await sessions.start("user-1")
    kept = await sessions.start("user-1")
    await sessions.authenticate(issued.access_token)
    assert await sessions.end_by_token(issued.refresh_token) is True
    with pytest.raises(InvalidToken, match="session revoked"):
        await sessions.authenticate(issued.access_token)
    with pytest.raises(RefreshRefused, match="not current"):
        await sessions.rotate(issued.refresh_token)
    assert await sessions.end_by_token(issued.refresh_token) is False
    assert await sessions.end_by_token("not a token") is False
    await sessions.authenticate(kept.access_token)


async def test_end_all_keeps_only_the_session_asked_for(sessions: RefreshSessions) -> None:
    one, two, three = [await sessions.start("user-1") for _ in range(3)]
    stranger = await sessions.start("user-2")
    assert await sessions.end_all("user-1", reason="password changed", keep=two.session_id) == 2
    for ended in (one, three):
        with pytest.raises(InvalidToken):
            await sessions.authenticate(ended.access_token)
    for live in (two, stranger):
        await sessions.authenticate(live.access_token)
    # Another user's session cannot be ended by naming it.
    assert await sessions.end(stranger.session_id, user_id="user-1") is False
    await sessions.authenticate(stranger.access_token)


async def test_forged_and_wrong_type_tokens_are_refused(sessions: RefreshSessions) -> None:
    issued = await sessions.start("user-1")
    with pytest.raises(InvalidToken):
        await sessions.authenticate(issued.refresh_token)  # a refresh token is no access token
    with pytest.raises(InvalidToken):
        await sessions.rotate(issued.access_token)
    head, body, signature = issued.access_token.split(".")
    with pytest.raises(InvalidToken):
        await sessions.authenticate(f"{head}.{body}.{signature[::-1]}")


async def test_two_instances_see_each_others_revocations_within_a_second(make: Make) -> None:
    one, two = make(), make()
    async with one.running(), two.running():
        issued = await one.start("user-1")
        await two.authenticate(issued.access_token)
        assert await one.end_by_token(issued.refresh_token)

        async def refused() -> bool:
            try:
                await two.authenticate(issued.access_token)
            except InvalidToken:
                return True
            return False

        await _until(refused, "the other instance refuses the ended session", within=1.0)
        with pytest.raises(InvalidToken):
            await two.rotate(issued.refresh_token)


async def _flush(flags: Store, flag_url: str | None) -> None:
    """The flag store loses everything, as a Redis restarted without persistence does."""
    if flag_url is None:
        assert isinstance(flags, MemoryStore)
        flags._flags.clear()
    else:
        await flush_redis(flag_url)


async def test_after_a_flag_store_flush_the_sync_rewrites_the_flags_within_its_interval(
    sessions: RefreshSessions, flags: Store, flag_url: str | None
) -> None:
    ended = await sessions.start("user-1")
    await sessions.end_by_token(ended.refresh_token)
    await _until(_synced(sessions), "synced", within=1.0)
    await _flush(flags, flag_url)
    assert not await flags.has_flag(flag_key(ended.session_id))
    took = await _until(
        lambda: flags.has_flag(flag_key(ended.session_id)), "the flag is rewritten", within=1.0
    )
    assert took < 3 * SYNC
    assert await flags.has_flag(SYNC_MARKER)
    with pytest.raises(InvalidToken):
        await sessions.authenticate(ended.access_token)


async def test_while_flags_are_missing_authenticate_reads_the_session_store(
    sessions: RefreshSessions,
    flags: Store,
    flag_url: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The flags are flushed and cannot be written back: the process knows it is out of
    sync and reads every session's row, so the ended one stays ended, the live one live."""
    ended, live = await sessions.start("user-1"), await sessions.start("user-1")
    await sessions.end_by_token(ended.refresh_token)
    await _until(_synced(sessions), "synced", within=1.0)
    original = type(flags).set_flag

    async def failing(self: Any, key: str, *, ttl: float) -> None:
        if self is flags and key != SYNC_MARKER:
            raise StoreUnavailable("test: store down")
        await original(self, key, ttl=ttl)

    monkeypatch.setattr(type(flags), "set_flag", failing)
    await _flush(flags, flag_url)
    await _until(_synced(sessions, False), "flush noticed", within=1.0)
    reads: list[str] = []
    store = sessions.store
    original_get = store.get

    async def get(session_id: str) -> Any:
        reads.append(session_id)
        return await original_get(session_id)

    monkeypatch.setattr(store, "get", get)
    for _ in range(3):  # across several sync rounds, all failing
        assert not await flags.has_flag(flag_key(ended.session_id))
        with pytest.raises(InvalidToken, match="session revoked"):
            await sessions.authenticate(ended.access_token)
        await sessions.authenticate(live.access_token)
        await asyncio.sleep(SYNC)
    assert ended.session_id in reads
    assert live.session_id in reads
    monkeypatch.setattr(type(flags), "set_flag", original)
    await _until(lambda: flags.has_flag(flag_key(ended.session_id)), "flag rewritten", within=1.0)
    await _until(_synced(sessions), "synced again", within=1.0)
    with pytest.raises(InvalidToken):
        await sessions.authenticate(ended.access_token)


async def test_the_absolute_max_age_ends_a_session_however_often_it_is_refreshed(
    make: Make, clock: Clock
) -> None:
    sessions = make(max_age=3 * DAY, refresh_ttl=DAY)
    issued = await sessions.start("user-1")
    end = issued.refresh_claims["exp"] + 2 * DAY  # the refresh token lives a day of three
    for _ in range(3):  # 60 h in: 12 h of the session left
        clock.advance(20 * 3600)
        issued = await sessions.rotate(issued.refresh_token)
    assert issued.refresh_claims["exp"] == end  # cut to the session's end
    assert issued.access_claims["exp"] <= end
    (row,) = await sessions.list("user-1")
    assert int(row.ends_at.timestamp()) == end
    clock.advance(12 * 3600)
    with pytest.raises(ExpiredToken) as raised:
        await sessions.rotate(issued.refresh_token)
    assert raised.value.reason == SESSION_ENDED
    assert await sessions.list("user-1") == []

"""Refresh-token sessions: short-lived access tokens, a rotating refresh token, and an
end that takes effect at once.

Each login starts a session (a token family): one row in a :class:`SessionStore`, whose
refresh token rotates on every use by compare-and-set (a rotated-away token never works
again, and of racing rotations with one token exactly one wins). A rotated-away token
presented again means a copy of it was taken: :class:`RefreshReused`, and the family is
ended, so the thief's newer token dies with the victim's. No session outlives its
absolute end (``max_age`` from its start, stored with it), however often refreshed.

The row is the truth. A revocation flag in the :class:`~bastion.store.Store`
(``revoked:<sid>``, kept as long as an access token of the session can live) makes an
end visible at once to every process reading the same store, without a database read
on the hot path; a caller can even look the flag up in the round trip it makes anyway
(the global rate limit's, ``RateLimitMiddleware``'s ``flag_for``).

A flag can go missing: the store restarted without persistence, or could not be reached
when the session ended. :meth:`RefreshSessions.running` closes that gap: once every
``sync_interval`` it checks that the store still holds the marker the last full sync
wrote; when the marker is gone, or this process failed to write a flag, it rewrites
every flag from the session store, then the marker. Until that is done the process
trusts no missing flag (:attr:`RefreshSessions.synced` is false) and reads the row.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bastion.security.exceptions import ExpiredToken, InvalidToken
from bastion.security.session_store import Session, SessionStore
from bastion.security.tokens import TokenCodec
from bastion.store import Store, StoreUnavailable
from bastion.tasks import stop

__all__ = [
    "SESSION_ENDED",
    "SYNC_MARKER",
    "IssuedTokens",
    "RefreshRefused",
    "RefreshReused",
    "RefreshSessions",
    "RevocationState",
    "SessionConfig",
    "flag_key",
    "unix",
]

logger = logging.getLogger("bastion.sessions")

SYNC_MARKER = "revoked:synced"
_MARKER_TTL = 86400.0
# Slack for clocks that disagree between the app and the store.
_FLAG_MARGIN = 5

# The reason when a refresh comes after its session's absolute end.
SESSION_ENDED = "session lifetime ended"
REUSE = "refresh token reuse"


def flag_key(session_id: str) -> str:
    """The store key of a session's revocation flag."""
    return f"revoked:{session_id}"


def unix(moment: datetime) -> int:
    """A deadline as a token's ``exp``: whole seconds, never later than ``moment``."""
    return int(moment.timestamp())


class RefreshRefused(InvalidToken):
    """An authentic refresh token its session refuses: no longer current, or the
    session's absolute end is reached. ``user_id`` is the token's, for the log."""

    def __init__(self, reason: str, *, user_id: str) -> None:
        super().__init__(reason)
        self.user_id = user_id


class RefreshReused(InvalidToken):
    """A refresh token that was rotated away came back: two parties hold copies of one
    session's tokens, one of them a thief. The session (the whole family, the newest
    token included) was ended before this was raised."""

    def __init__(self, reason: str = REUSE, *, session_id: str, user_id: str) -> None:
        super().__init__(reason)
        self.session_id = session_id
        self.user_id = user_id


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Lifetimes in seconds: of an access token, of a refresh token not used, of a
    session however often refreshed (``max_age``); ``sync_interval`` between checks
    that the store still holds the revocation flags."""

    access_ttl: int = 900
    refresh_ttl: int = 604800
    max_age: int = 2592000
    sync_interval: float = 1.0

    def __post_init__(self) -> None:
        if min(self.access_ttl, self.refresh_ttl, self.max_age) < 1 or self.sync_interval <= 0:
            raise ValueError("session lifetimes and the sync interval must be positive")


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """The tokens of a session start or rotation, each with its claims."""

    session_id: str
    user_id: str
    access_token: str
    access_claims: dict[str, Any]
    refresh_token: str
    refresh_claims: dict[str, Any]


class RevocationState:
    """Whether this process may take a missing revocation flag to mean "not revoked".

    False until the first sync of the flags from the session store, and again from the
    moment a flag may be missing (a write failed, the store was unreachable) until the
    next sync; meanwhile sessions are read from the session store. ``checked_at``
    (``time.monotonic()``) is when a sync last confirmed the flags.
    """

    __slots__ = ("checked_at", "losses", "synced")

    def __init__(self) -> None:
        self.synced = False
        self.losses = 0
        self.checked_at = time.monotonic()

    def lost(self) -> None:
        """A flag may be missing from the store: trust none until the next sync."""
        self.synced = False
        self.losses += 1


class RefreshSessions:
    """Start, rotate, check and end refresh-token sessions (see the module docstring).

    ``access`` and ``refresh`` are the codecs of the two token types (distinct ``typ``
    and keys, so one is never taken for the other); sessions read the time off the
    refresh codec's clock, so that a session's deadlines and its tokens' ``exp`` agree.
    ``flags`` is the store of the revocation flags, shared by every process.
    """

    def __init__(
        self,
        store: SessionStore,
        flags: Store,
        *,
        access: TokenCodec,
        refresh: TokenCodec,
        config: SessionConfig = SessionConfig(),
    ) -> None:
        self.store = store
        self.flags = flags
        self.access = access
        self.refresh = refresh
        self.config = config
        self.revocations = RevocationState()

    # -- time and flags ------------------------------------------------------------------

    def now(self) -> datetime:
        """Now, on the refresh codec's clock."""
        return datetime.fromtimestamp(self.refresh.config.clock(), UTC)

    @staticmethod
    def flag_key(session_id: str) -> str:
        """The store key of a session's revocation flag (:func:`flag_key`)."""
        return flag_key(session_id)

    @property
    def synced(self) -> bool:
        """Whether a missing flag may be taken to mean "not revoked" right now."""
        return self.revocations.synced

    def _flag_ttl(self) -> int:
        """How long an access token of an ended session can still be presented."""
        return self.config.access_ttl + _FLAG_MARGIN

    async def _flag(self, session_ids: builtins.list[str]) -> None:
        for sid in session_ids:
            try:
                await self.flags.set_flag(flag_key(sid), ttl=self._flag_ttl())
            except StoreUnavailable:
                # The rows are revoked already. This process reads rows until its sync
                # has written the flags; other processes learn of it then.
                self.revocations.lost()
                return

    # -- the session's life ---------------------------------------------------------------

    async def start(
        self,
        user_id: str,
        *,
        user_agent: str = "",
        ip: str = "",
        amr: Sequence[str] = ("pwd",),
    ) -> IssuedTokens:
        """A new session and its first tokens. It ends ``max_age`` from now, a deadline
        stored with it (a later change of the setting moves no session's end); no token
        of it outlives that. ``amr``: how its login was authenticated (RFC 8176's
        method names, kept with the session: :attr:`Session.amr`)."""
        now = self.now()
        # Whole seconds, as a token's ``exp`` is: the row and the tokens name one end.
        ends_at = datetime.fromtimestamp(unix(now) + self.config.max_age, UTC)
        session_id = str(uuid.uuid4())
        refresh, refresh_claims = self.refresh.issue(
            user_id, claims={"sid": session_id}, not_after=unix(ends_at)
        )
        await self.store.create(
            session_id=session_id,
            user_id=user_id,
            token_id=refresh_claims["jti"],
            now=now,
            expires_at=now + timedelta(seconds=self.config.refresh_ttl),
            ends_at=ends_at,
            user_agent=user_agent,
            ip=ip,
            amr=amr,
        )
        access, access_claims = self.access.issue(
            user_id, claims={"sid": session_id}, not_after=unix(ends_at)
        )
        return IssuedTokens(session_id, user_id, access, access_claims, refresh, refresh_claims)

    async def rotate(self, refresh_token: str, *, ip: str = "") -> IssuedTokens:
        """New tokens for a current refresh token, which stops working. Raises
        :class:`ExpiredToken` (its ``reason`` says whether the session's lifetime
        ended), :class:`RefreshReused` (a rotated-away token: the session was ended),
        :class:`RefreshRefused` (not current, or the session's end reached) or
        :class:`InvalidToken` (not an authentic refresh token of a session)."""
        try:
            claims = self.refresh.verify(refresh_token)
        except ExpiredToken as exc:
            raise ExpiredToken(await self._why_expired(exc), claims=exc.claims) from None
        sid = claims.get("sid")
        if not isinstance(sid, str):
            raise InvalidToken("refresh token names no session")
        now = self.now()
        jti = uuid.uuid4().hex  # recorded first; the token is issued once the row says when
        rotated = await self.store.rotate(
            session_id=sid,
            old_token_id=claims["jti"],
            new_token_id=jti,
            now=now,
            expires_at=now + timedelta(seconds=self.config.refresh_ttl),
            ip=ip,
        )
        if rotated is None:
            row = await self.store.get(sid)
            if row is not None and row.user_id == claims["sub"]:
                if row.token_id != claims["jti"]:
                    # A token we signed, for a real session, that is no longer current.
                    await self.end(sid, user_id=row.user_id, reason=REUSE)
                    raise RefreshReused(session_id=sid, user_id=row.user_id)
                if row.revoked_at is None and row.ends_at <= now:
                    raise RefreshRefused(SESSION_ENDED, user_id=claims["sub"])
            raise RefreshRefused("refresh token not current", user_id=claims["sub"])
        # The new tokens live their usual time, or until the session's end if sooner.
        end = unix(rotated.ends_at)
        refresh, refresh_claims = self.refresh.issue(
            claims["sub"], claims={"sid": sid}, not_after=end, jti=jti
        )
        access, access_claims = self.access.issue(claims["sub"], claims={"sid": sid}, not_after=end)
        return IssuedTokens(sid, claims["sub"], access, access_claims, refresh, refresh_claims)

    async def _why_expired(self, exc: ExpiredToken) -> str:
        """The reason for an authentic refresh token past its ``exp``: the end of its
        session's lifetime (tokens are cut to it), or plain expiry (not refreshed
        within ``refresh_ttl``)."""
        sid = exc.claims.get("sid")
        if isinstance(sid, str):
            row = await self.store.get(sid)
            if row is not None and row.ends_at <= self.now():
                return SESSION_ENDED
        return exc.reason

    async def authenticate(self, access_token: str) -> dict[str, Any]:
        """The verified claims of a live session's access token, else
        :class:`InvalidToken`: a forged, expired or wrong-type token, or one whose
        session ended (its flag, one store round trip; the row while flags may be
        missing)."""
        claims = self.access.verify(access_token)
        sid = claims.get("sid")
        if not isinstance(sid, str):
            raise InvalidToken("token names no session")
        if await self.revoked(sid):
            raise InvalidToken("session revoked")
        return claims

    async def revoked(self, session_id: str) -> bool:
        """Whether the session ended: its flag, or the row when the flags may be
        incomplete or the store cannot be reached (fail closed on the durable record)."""
        try:
            if await self.flags.has_flag(flag_key(session_id)):
                return True
        except StoreUnavailable:
            return await self.ended(session_id)
        return not self.revocations.synced and await self.ended(session_id)

    async def revoked_given(self, session_id: str, *, flagged: bool) -> bool:
        """:meth:`revoked` when the caller looked the flag up itself (in a round trip it
        made anyway): a raised flag is always right, a missing one only while synced."""
        return flagged or (not self.revocations.synced and await self.ended(session_id))

    async def ended(self, session_id: str) -> bool:
        """The session store's answer: the session is gone or revoked."""
        row = await self.store.get(session_id)
        return row is None or row.revoked_at is not None

    async def end_by_token(self, refresh_token: str, *, reason: str = "logout") -> bool:
        """Logout: end the session of a valid refresh token; false if there is none live."""
        try:
            claims = self.refresh.verify(refresh_token)
        except InvalidToken:
            return False
        sid = claims.get("sid")
        if not isinstance(sid, str):
            return False
        return await self.end(sid, user_id=claims["sub"], reason=reason)

    async def end(self, session_id: str, *, user_id: str, reason: str = "logout") -> bool:
        """End one live session of ``user_id``; false if it has none such. Its access
        tokens are refused from now on."""
        if not await self.store.revoke(
            session_id, user_id=user_id, reason=reason, now=datetime.now(UTC)
        ):
            return False
        await self._flag([session_id])
        return True

    async def end_all(self, user_id: str, *, reason: str, keep: str | None = None) -> int:
        """End every live session of ``user_id`` but ``keep``; how many were ended."""
        ended = await self.store.revoke_all(
            user_id, reason=reason, now=datetime.now(UTC), keep=keep
        )
        await self._flag(ended)
        return len(ended)

    async def list(self, user_id: str) -> builtins.list[Session]:
        """The user's live sessions, newest first."""
        return await self.store.live(user_id, now=self.now())

    # -- keeping the flags in sync --------------------------------------------------------

    async def sync(self) -> bool:
        """Make sure the store holds the flag of every session ended within an access
        token's lifetime; true if the flags had to be rewritten. Raises whatever the
        flag or session store raises (then this process stays unsynced)."""
        state = self.revocations
        if state.synced and await self.flags.has_flag(SYNC_MARKER):
            state.checked_at = time.monotonic()
            return False
        losses = state.losses
        state.synced = False
        window = self._flag_ttl()
        now = datetime.now(UTC)
        for sid, revoked_at in await self.store.recently_revoked(
            since=now - timedelta(seconds=window)
        ):
            left = window - (now - revoked_at).total_seconds()
            if left > 0:
                await self.flags.set_flag(flag_key(sid), ttl=left)
        await self.flags.set_flag(SYNC_MARKER, ttl=_MARKER_TTL)
        # A flag that failed to be written meanwhile needs another round.
        if state.losses == losses:
            state.synced = True
            state.checked_at = time.monotonic()
        return True

    async def _keep_synced(self) -> None:
        while True:
            await asyncio.sleep(self.config.sync_interval)
            try:
                if await self.sync():
                    logger.warning("revocation flags were missing from the store: rewritten")
            except Exception as exc:
                # An outage may be a restart that loses flags: trust none until resynced.
                self.revocations.lost()
                logger.warning("revocation sync failed (%s); reading sessions instead", exc)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Sync once, then keep the store's revocation flags in sync until exit."""
        try:
            await self.sync()
        except Exception as exc:
            self.revocations.lost()
            logger.warning("revocation sync failed (%s); reading sessions instead", exc)
        task = asyncio.create_task(self._keep_synced(), name="revocation sync")
        try:
            yield
        finally:
            await stop(task)

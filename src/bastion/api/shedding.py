"""Password attempts the hasher cannot take, refused in front of the framework.

When the hasher's line is full, the login and register routes answer an untrusted
attempt 503 before it costs a store round trip or a query. Under a flood that refusal
is most of what the server does, and through the framework (routing, dependency
solving, reading, parsing and validating the body) it costs several times what the
answer itself needs; every request in flight waits its turn behind that work, the
returning user's login included. :class:`ShedAttempts` gives the route's answer from
the request line and the headers alone.

Here a request is untrusted when it carries no device cookie with a valid signature.
Whether a valid cookie was issued for the account the body names is for the route to
decide (it has parsed the body), so those requests go on, and the route sheds them
in the same way when they are not trusted for that account.

Refusing an attempt costs little, but under a flood it is all the event loop does, and
a returning user's login waits behind it at every step: each of its store and database
round trips, and its hash, which shares the CPU with the loop. So while a login that
carries a validly signed device cookie is in flight (:class:`MarkReturning` counts them
from the moment they arrive), each refusal waits for it to finish, at most
:data:`HOLD_MAX`, before it is sent. Stuffing tools send from a fixed pool of
connections and wait for each answer before the next guess; held answers mean fewer
guesses meanwhile, and the loop and the CPU go to the returning user. Nothing is
queued: the refusal has been decided, and the client is told to retry after a second
anyway. At most :data:`HOLD_LIMIT` refusals are held at once; past that they are sent
at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from starlette.requests import cookie_parser

from bastion.api.errors import PROBLEM_BASE
from bastion.security import (
    ASGIApp,
    InvalidToken,
    PasswordHasher,
    Receive,
    Scope,
    Send,
    TokenCodec,
    send_problem,
)

__all__ = ["HOLD_LIMIT", "HOLD_MAX", "MarkReturning", "ReturningLogins", "ShedAttempts"]

HOLD_MAX = 0.5  # seconds a refusal waits, at most, for returning users' logins to finish
HOLD_LIMIT = 1024  # refusals held at once, at most; past it they are sent at once

# Set by MarkReturning on a login it has looked at: whether its device cookie is validly
# signed (ShedAttempts then need not check the signature again).
SIGNED_KEY = "bastion.device_signed"


class ReturningLogins:
    """Logins in flight that carry a validly signed device cookie, and the refusals of
    untrusted attempts held back until none is (at most ``hold_max`` seconds each, at
    most ``hold_limit`` at once)."""

    __slots__ = ("_idle", "held", "hold_limit", "hold_max", "in_flight")

    def __init__(self, *, hold_max: float = HOLD_MAX, hold_limit: int = HOLD_LIMIT) -> None:
        self.hold_max = hold_max
        self.hold_limit = hold_limit
        self.in_flight = 0
        self.held = 0
        self._idle: asyncio.Event | None = None  # set when in_flight drops to 0

    def enter(self) -> None:
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()
            self._idle = None

    async def hold(self) -> None:
        """Return once no returning login is in flight, or after ``hold_max``."""
        if self.in_flight == 0 or self.held >= self.hold_limit:
            return
        if self._idle is None:
            self._idle = asyncio.Event()
        idle = self._idle
        self.held += 1
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.hold_max):
                    await idle.wait()
        finally:
            self.held -= 1


def signed_device(scope: Scope, cookie: str, codec: TokenCodec) -> bool:
    """Whether the request carries cookie ``cookie`` with a signature ``codec`` accepts."""
    header = b"; ".join(v for k, v in scope["headers"] if k == b"cookie")
    if cookie.encode() not in header:
        return False
    token = cookie_parser(header.decode("latin-1")).get(cookie)
    if not token:
        return False
    try:
        codec.verify(token)
    except InvalidToken:
        return False
    return True


class MarkReturning:
    """Counts each ``POST`` to ``path`` with a ``cookie`` that ``device`` verifies in
    ``returning`` while it is in flight. The outermost layer: the count starts before
    the request's first round trip (the global limit's)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        device: TokenCodec,
        returning: ReturningLogins,
        path: str,
        cookie: str,
    ) -> None:
        self.app = app
        self.device = device
        self.returning = returning
        self.path = path
        self.cookie = cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        signed = scope[SIGNED_KEY] = signed_device(scope, self.cookie, self.device)
        if not signed:
            await self.app(scope, receive, send)
            return
        returning = self.returning
        returning.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            returning.leave()


class ShedAttempts:
    """503 with ``Retry-After`` for ``POST`` to ``paths`` while the hasher would refuse
    an untrusted attempt, unless the request carries a ``cookie`` that ``device``
    verifies. ``hasher`` is called on each request for the hasher the routes use now;
    ``on_shed`` counts each refusal."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        hasher: Callable[[], PasswordHasher],
        device: TokenCodec,
        returning: ReturningLogins,
        paths: frozenset[str],
        cookie: str,
        on_shed: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.hasher = hasher
        self.device = device
        self.returning = returning
        self.paths = paths
        self.cookie = cookie
        self.on_shed = on_shed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in self.paths
            and self.hasher().refuses(trusted=False)
            and not self._signed_device(scope)
        ):
            if self.on_shed is not None:
                self.on_shed()
            await self.returning.hold()
            # The route's own answer to an attempt the hasher refuses (its problem
            # handler for Unavailable): same status, body and Retry-After.
            await send_problem(
                send,
                503,
                "The request cannot be served.",
                headers=[(b"retry-after", str(PasswordHasher.retry_after).encode())],
                base=PROBLEM_BASE,
            )
            return
        await self.app(scope, receive, send)

    def _signed_device(self, scope: Scope) -> bool:
        known: bool | None = scope.get(SIGNED_KEY)
        if known is not None:
            return known
        return signed_device(scope, self.cookie, self.device)

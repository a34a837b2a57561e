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
"""

from __future__ import annotations

from starlette.requests import cookie_parser

from bastion.api.deps import Services
from bastion.security.asgi import ASGIApp, Receive, Scope, Send
from bastion.security.exceptions import InvalidToken
from bastion.security.passwords import RETRY_AFTER
from bastion.security.problems import send_problem

__all__ = ["ShedAttempts"]


class ShedAttempts:
    """503 with ``Retry-After`` for ``POST`` to ``paths`` while the hasher would refuse
    an untrusted attempt, unless the request carries a validly signed device cookie."""

    def __init__(
        self, app: ASGIApp, services: Services, *, paths: frozenset[str], cookie: str
    ) -> None:
        self.app = app
        self.services = services  # its hasher, read on each request, as the routes do
        self.paths = paths
        self.cookie = cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in self.paths
            and self.services.hasher.refuses(trusted=False)
            and not self._signed_device(scope)
        ):
            # The route's own answer to an attempt the hasher refuses (its problem
            # handler for Unavailable): same status, body and Retry-After.
            await send_problem(
                send,
                503,
                "The request cannot be served.",
                headers=[(b"retry-after", str(RETRY_AFTER).encode())],
            )
            return
        await self.app(scope, receive, send)

    def _signed_device(self, scope: Scope) -> bool:
        header = b"; ".join(v for k, v in scope["headers"] if k == b"cookie")
        if self.cookie.encode() not in header:
            return False
        token = cookie_parser(header.decode("latin-1")).get(self.cookie)
        if not token:
            return False
        try:
            self.services.device.verify(token)
        except InvalidToken:
            return False
        return True

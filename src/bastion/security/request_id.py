"""A request id for every request, sent back as ``X-Request-ID`` and put in every event
and every log line written while the request is served."""

from __future__ import annotations

import itertools
import re
import uuid

import structlog

from bastion.security.asgi import ASGIApp, Message, Receive, Scope, Send
from bastion.security.events import REQUEST_ID_KEY

__all__ = ["RESPONSE_STATUS_KEY", "RequestIdMiddleware"]

# The status of the response, once it has started (for the layers outside, metrics).
RESPONSE_STATUS_KEY = "bastion.response_status"

# A caller's own id is kept only if it cannot smuggle anything into a log line.
_SAFE = re.compile(rb"^[A-Za-z0-9._-]{8,64}$")


class RequestIdMiddleware:
    """Gives each request an id unique across processes (``scope["bastion.request_id"]``,
    a random per-process prefix and a counter: not a secret, never reused). With
    ``trust_incoming`` (behind a proxy that sets one) a caller's ``X-Request-ID`` is
    kept when it is 8 to 64 characters of ``[A-Za-z0-9._-]``, else replaced. The
    response's status goes in ``scope["bastion.response_status"]`` as it starts: this
    layer sees every response start anyway, so no other layer needs to wrap ``send``."""

    def __init__(self, app: ASGIApp, *, trust_incoming: bool = False) -> None:
        self.app = app
        self.trust_incoming = trust_incoming
        self._prefix = uuid.uuid4().hex[:16]
        self._counter = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        if self.trust_incoming:
            for key, value in scope["headers"]:
                if key == b"x-request-id" and _SAFE.match(value):
                    request_id = value.decode()
        if not request_id:
            # Unique, not secret: a per-process random prefix and a counter, since
            # drawing from the OS's random source on every request costs measurably.
            request_id = f"{self._prefix}{next(self._counter):010x}"
        scope[REQUEST_ID_KEY] = request_id
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
                scope[RESPONSE_STATUS_KEY] = message["status"]
            await send(message)

        with structlog.contextvars.bound_contextvars(requestId=request_id):
            await self.app(scope, receive, send_with_id)

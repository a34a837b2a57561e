"""A request id for every request, sent back as ``X-Request-ID`` and put in every event."""

from __future__ import annotations

import re
import uuid

from bastion.security.asgi import ASGIApp, Message, Receive, Scope, Send
from bastion.security.events import REQUEST_ID_KEY

__all__ = ["RequestIdMiddleware"]

# A caller's own id is kept only if it cannot smuggle anything into a log line.
_SAFE = re.compile(rb"^[A-Za-z0-9._-]{8,64}$")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp, *, trust_incoming: bool = False) -> None:
        self.app = app
        self.trust_incoming = trust_incoming

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        if self.trust_incoming:
            for key, value in scope["headers"]:
                if key == b"x-request-id" and _SAFE.match(value):
                    request_id = value.decode()
        request_id = request_id or uuid.uuid4().hex
        scope[REQUEST_ID_KEY] = request_id
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)

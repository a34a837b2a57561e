"""Refuse request bodies over a size limit before anything parses them."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from bastion.security.asgi import ASGIApp, Message, Receive, Scope, Send
from bastion.security.exceptions import BastionError
from bastion.security.problems import send_problem

__all__ = ["BodyLimitConfig", "BodyLimitMiddleware", "BodyTooLarge"]


class BodyTooLarge(BastionError):
    """Raised from ``receive`` once a streamed body passes the limit."""


@dataclass(frozen=True, slots=True)
class BodyLimitConfig:
    """``max_bytes``: the largest body accepted; ``problem_base``: the URL the 413's
    problem type is under (``about:blank`` without one)."""

    max_bytes: int = 10240
    problem_base: str | None = None

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ValueError("max_bytes must be positive")


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``: at once when ``Content-Length`` says so, and as
    the bytes stream in otherwise (chunked bodies carry no length to trust)."""

    def __init__(self, app: ASGIApp, config: BodyLimitConfig = BodyLimitConfig()) -> None:
        self.app = app
        self.max_bytes = config.max_bytes
        self.problem_base = config.problem_base

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_problem(
                        send, 400, "Content-Length is not a number.", base=self.problem_base
                    )
                    return
                if declared > limit:
                    await _refuse(send, limit, self.problem_base)
                    return
        received = 0
        started = refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Answer now: frameworks turn errors raised while reading the body
                    # into their own 400, which tracking_send then drops.
                    if not started and not refused:
                        refused = True
                        await _refuse(send, limit, self.problem_base)
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(BodyTooLarge):
            await self.app(scope, counting_receive, tracking_send)


async def _refuse(send: Send, limit: int, base: str | None) -> None:
    await send_problem(
        send,
        413,
        f"The request body is larger than {limit} bytes.",
        headers=[(b"connection", b"close")],
        base=base,
    )

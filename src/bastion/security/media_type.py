"""415 for request bodies that are not JSON, before any parser sees them."""

from __future__ import annotations

from bastion.security.asgi import ASGIApp, Receive, Scope, Send
from bastion.security.problems import send_problem

__all__ = ["JsonOnlyMiddleware"]


def _is_json(content_type: bytes) -> bool:
    main = content_type.split(b";", 1)[0].strip().lower()
    return main == b"application/json" or (
        main.startswith(b"application/") and main.endswith(b"+json")
    )


class JsonOnlyMiddleware:
    """Any request under ``prefix`` (every path by default) that carries a body must
    say it is JSON: no form or multipart body reaches a parser the app never meant to
    expose (415). ``problem_base``: the URL the problem type is under."""

    def __init__(self, app: ASGIApp, *, prefix: str = "/", problem_base: str | None = None) -> None:
        self.app = app
        self.prefix = prefix
        self.problem_base = problem_base

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            has_body = False
            content_type = b""
            for key, value in scope["headers"]:
                if key == b"content-type":
                    content_type = value
                elif (key == b"content-length" and value.strip() not in (b"0", b"")) or (
                    key == b"transfer-encoding"
                ):
                    has_body = True
            if has_body and not _is_json(content_type):
                await send_problem(
                    send,
                    415,
                    "Request bodies must be JSON (Content-Type: application/json).",
                    base=self.problem_base,
                )
                return
        await self.app(scope, receive, send)

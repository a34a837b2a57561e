"""RFC 9457 problem details, sent straight from ASGI middleware.

The problem types are defined once, in :data:`PROBLEM_TYPES` (status -> slug and title).
A problem's ``type`` is ``base`` + slug when the caller names a base URL of its own
(documentation of its problem types), and ``about:blank`` otherwise, as RFC 9457 says
for a problem with no more meaning than its status: the layer knows no one's URLs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import orjson

from bastion.security.asgi import Send

__all__ = ["PROBLEM_TYPES", "ProblemType", "problem_body", "send_problem"]


class ProblemType(NamedTuple):
    """A problem type: its ``slug`` (the last segment of its ``type`` URL) and ``title``."""

    slug: str
    title: str


PROBLEM_TYPES: dict[int, ProblemType] = {
    400: ProblemType("invalid-request", "Invalid request"),
    401: ProblemType("unauthorized", "Unauthorized"),
    403: ProblemType("forbidden", "Forbidden"),
    404: ProblemType("not-found", "Not found"),
    405: ProblemType("method-not-allowed", "Method not allowed"),
    409: ProblemType("conflict", "Conflict"),
    413: ProblemType("payload-too-large", "Payload too large"),
    415: ProblemType("unsupported-media-type", "Unsupported media type"),
    422: ProblemType("invalid-request", "Invalid request"),
    429: ProblemType("too-many-requests", "Too many requests"),
    500: ProblemType("internal-error", "Internal error"),
    503: ProblemType("unavailable", "Service unavailable"),
}
_OTHER = ProblemType("error", "Error")


def problem_body(status: int, detail: str, *, base: str | None = None, **extra: Any) -> bytes:
    """The JSON body of a problem; ``base``: the URL the ``type`` slugs are under."""
    kind = PROBLEM_TYPES.get(status, _OTHER)
    body: dict[str, Any] = {
        "type": f"{base}{kind.slug}" if base is not None else "about:blank",
        "title": kind.title,
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    return orjson.dumps(body)


async def send_problem(
    send: Send,
    status: int,
    detail: str,
    *,
    headers: Iterable[tuple[bytes, bytes]] = (),
    base: str | None = None,
    **extra: Any,
) -> None:
    """Answer with a problem straight from middleware (nothing reaches the app)."""
    body = problem_body(status, detail, base=base, **extra)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""RFC 9457 problem details, sent straight from ASGI middleware."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from bastion.security.asgi import Send

__all__ = ["PROBLEM_TYPES", "problem_body", "send_problem"]

PROBLEM_TYPES = {
    400: "invalid-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-request",
    429: "too-many-requests",
    500: "internal-error",
    503: "unavailable",
}
TITLES = {
    400: "Invalid request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


def problem_body(status: int, detail: str, **extra: Any) -> bytes:
    body: dict[str, Any] = {
        "type": f"https://bastion.dev/problems/{PROBLEM_TYPES.get(status, 'error')}",
        "title": TITLES.get(status, "Error"),
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
    **extra: Any,
) -> None:
    body = problem_body(status, detail, **extra)
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

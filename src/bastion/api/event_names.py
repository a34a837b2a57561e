"""The service's security events: the closed list its :class:`SecurityEventLog` accepts."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["EVENT_NAMES", "SERVER_LOGGERS", "EventName"]

EventName = Literal[
    "auth.login.succeeded",
    "auth.login.failed",
    "auth.lockout",
    "auth.refresh.reuse_detected",
    "auth.token.rejected",
    "authz.denied",
    "input.rejected",
    "ratelimit.exceeded",
    # Authentication operations past the login (ASVS V16.3.1): a changed password and
    # every session that ends, with how it ended in ``reason``.
    "auth.password.changed",
    "auth.session.ended",
]
EVENT_NAMES: tuple[str, ...] = get_args(EventName)

# The ASGI server's loggers, routed through the same redacted JSON as every other line.
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")

"""The security layer's errors.

::

    SecurityError                      base of everything this layer raises
    ├── InvalidToken                   any token failure (one opaque error; reason for logs)
    │   └── ExpiredToken               authentic, but past its ``exp``
    ├── InvalidCredentials             wrong password or unknown account (one opaque error)
    ├── RateLimited                    a budget is spent (429, carries retry_after)
    └── Unavailable                    a dependency or the hasher is saturated (503)

Clients only ever see the opaque form; ``reason`` goes to the security event.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ExpiredToken",
    "InvalidCredentials",
    "InvalidToken",
    "RateLimited",
    "SecurityError",
    "Unavailable",
]


class SecurityError(Exception):
    status = 400
    problem = "invalid-request"

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidToken(SecurityError):
    status = 401
    problem = "unauthorized"


class ExpiredToken(InvalidToken):
    """A token that verified in every respect but time: it expired. ``claims`` are its
    verified claims, for telling the caller's log why (which session ended); the token
    itself is refused like any other."""

    def __init__(self, reason: str = "", *, claims: dict[str, Any]) -> None:
        super().__init__(reason)
        self.claims = claims


class InvalidCredentials(SecurityError):
    status = 401
    problem = "unauthorized"


class RateLimited(SecurityError):
    status = 429
    problem = "too-many-requests"

    def __init__(self, reason: str = "", *, retry_after: int = 1) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Unavailable(SecurityError):
    status = 503
    problem = "unavailable"

    def __init__(self, reason: str = "", *, retry_after: int = 1) -> None:
        super().__init__(reason)
        self.retry_after = retry_after

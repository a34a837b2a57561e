"""Every error Bastion raises, under one root.

::

    BastionError                       root of everything the package raises
    ├── SecurityError                  base of what the security layer refuses
    │   ├── InvalidToken               any token failure (one opaque error; reason for logs)
    │   │   ├── ExpiredToken           authentic, but past its ``exp``
    │   │   └── RefreshReused          a rotated-away refresh token again: family revoked
    │   ├── InvalidCredentials         wrong password or unknown account (one opaque error)
    │   ├── PasskeyRefused             a passkey state or credential refused (401; reason)
    │   ├── InvalidCode                a wrong, malformed or replayed one-time code (401)
    │   ├── ChallengeRefused           a login challenge forged, expired, unbound, used or dead
    │   ├── RateLimited                a budget is spent (429, carries retry_after)
    │   │   └── AttemptRefused         the attempt guard's budget or lockout (which: reason)
    │   └── Unavailable                a dependency or the hasher is saturated (503)
    ├── StoreUnavailable               the rate-limit store cannot answer (fail closed)
    ├── SealBroken                     a sealed secret that does not open (tampered, moved)
    ├── BodyTooLarge                   a streamed body passed the limit (413)
    └── (the service's)                DatabaseUnavailable, IntegrityConflict, ApiError,
                                       ConfigError, QueryRejected, the audit's errors

``RefreshReused`` lives in :mod:`bastion.security.sessions`, ``StoreUnavailable`` in
:mod:`bastion.store`, ``BodyTooLarge`` in :mod:`bastion.security.body_limit`,
``PasskeyRefused`` in :mod:`bastion.security.passkey_state`, ``InvalidCode`` in
:mod:`bastion.security.totp`, ``ChallengeRefused`` in :mod:`bastion.security.challenges`,
``SealBroken`` in :mod:`bastion.security.sealed`; this is the one place the tree is drawn.
Catching :class:`BastionError` catches every refusal and every failure of a dependency the
package reports, and nothing else.

Clients only ever see the opaque form; ``reason`` goes to the security event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from bastion.store import Hit

__all__ = [
    "AttemptRefused",
    "BastionError",
    "ExpiredToken",
    "InvalidCredentials",
    "InvalidToken",
    "RateLimited",
    "Refusal",
    "SecurityError",
    "Unavailable",
]

Refusal = Literal["auth limit", "account locked", "device locked"]


class BastionError(Exception):
    """Root of every error the package raises: one ``except`` for all of them, so that
    a caller never mistakes a refusal or an unreachable dependency for a bug."""


class SecurityError(BastionError):
    """A request the security layer refuses; ``status`` is its HTTP answer, ``reason``
    the log's (never the client's) account of why."""

    status = 400

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidToken(SecurityError):
    """A token that is forged, tampered with, of the wrong type, issuer or audience,
    signed with an algorithm or key not pinned, or otherwise unusable (401)."""

    status = 401


class ExpiredToken(InvalidToken):
    """A token that verified in every respect but time: it expired. ``claims`` are its
    verified claims, for telling the caller's log why (which session ended); the token
    itself is refused like any other."""

    def __init__(self, reason: str = "", *, claims: dict[str, Any]) -> None:
        super().__init__(reason)
        self.claims = claims


class InvalidCredentials(SecurityError):
    """A wrong password or an unknown account: one error for both, so that the answer
    tells nobody which accounts exist (401)."""

    status = 401


class RateLimited(SecurityError):
    """A budget is spent (429); ``retry_after`` is when to try again, in seconds."""

    status = 429

    def __init__(self, reason: str = "", *, retry_after: int = 1) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class AttemptRefused(RateLimited):
    """A password attempt refused by the attempt guard before any password is looked
    at (429): too many failures from the address, or the account (or device) locked
    out. ``reason`` says which; ``ip_hit`` is the per-IP budget as the attempt found
    it, when that budget applied."""

    def __init__(self, reason: Refusal, *, retry_after: int, ip_hit: Hit | None) -> None:
        super().__init__(reason, retry_after=retry_after)
        self.ip_hit = ip_hit


class Unavailable(SecurityError):
    """A dependency cannot answer or the hasher's line is full (503): the request is
    refused, never served with a check skipped."""

    status = 503

    def __init__(self, reason: str = "", *, retry_after: int = 1) -> None:
        super().__init__(reason)
        self.retry_after = retry_after

"""The service's side of every password attempt: events, metrics and the ``auth``
RateLimit policy, told by the attempt guard as it settles each attempt."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from bastion.security import (
    Attempt,
    AttemptRefused,
    Hit,
    Rate,
    SecurityEventLog,
    add_policy,
)

if TYPE_CHECKING:
    from bastion.metrics.registry import Metrics

__all__ = ["AttemptEvents"]


class AttemptEvents:
    """An :class:`~bastion.security.AttemptObserver` for the service: a refusal is
    ``ratelimit.exceeded`` or ``auth.lockout``, a failed login ``auth.login.failed``
    (and ``auth.lockout`` when it spent the last slot), and every answer reports the
    per-IP budget in its RateLimit fields as the attempt left it."""

    def __init__(
        self, events: SecurityEventLog, per_ip: Rate, metrics: Metrics | None = None
    ) -> None:
        self.events = events
        self.per_ip = per_ip
        self.metrics = metrics

    def _policy(self, attempt: Attempt, hit: Hit | None) -> None:
        if hit is not None and attempt.scope is not None:
            add_policy(attempt.scope, "auth", self.per_ip, hit)

    def refused(self, attempt: Attempt, exc: AttemptRefused) -> None:
        if self.metrics is not None:
            self.metrics.refused("auth" if exc.reason == "auth limit" else "lockout")
        self._policy(attempt, exc.ip_hit)
        event = "ratelimit.exceeded" if exc.reason == "auth limit" else "auth.lockout"
        self.events.emit(event, attempt.scope, reason=exc.reason)

    def failed(self, attempt: Attempt, reason: str) -> None:
        self._policy(attempt, attempt.reservation.ip_hit)
        if attempt.account is None:  # a registration refused: the route says why
            return
        self.events.emit("auth.login.failed", attempt.scope, user_id=attempt.user, reason=reason)
        if attempt.locked:
            if self.metrics is not None:
                self.metrics.lockouts.inc()
            locked = "device locked" if attempt.device is not None else "account locked"
            self.events.emit("auth.lockout", attempt.scope, user_id=attempt.user, reason=locked)

    def succeeded(self, attempt: Attempt) -> None:
        hit = attempt.reservation.ip_hit
        self._policy(attempt, replace(hit, count=max(0, hit.count - 1)) if hit else None)

"""Verdicts, and the exceptions a check raises to give one.

A check returns the reason it passed, or raises :class:`Failed`, :class:`Inconclusive`
or :class:`NotApplicable`. ``inconclusive`` is never a pass: it says that the audit
could not judge (a control failed, the target's limits stopped it, a budget ran out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bastion.security import BastionError

__all__ = [
    "VERDICTS",
    "CheckOutcome",
    "Failed",
    "Inconclusive",
    "NotApplicable",
    "Verdict",
    "Verdicts",
]

Verdict = Literal["pass", "fail", "not-applicable", "inconclusive"]
VERDICTS: tuple[Verdict, ...] = ("pass", "fail", "not-applicable", "inconclusive")


class Verdicts(BastionError):
    """Root of the exceptions that end a check with a verdict other than ``pass``."""

    verdict: Verdict = "inconclusive"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Failed(Verdicts):
    """The target lacks the defence the check looks for."""

    verdict: Verdict = "fail"


class Inconclusive(Verdicts):
    """The check could not judge. ``limited`` is true when the target's own limits
    (a 429 the check did not provoke on purpose) are what stopped it."""

    verdict: Verdict = "inconclusive"

    def __init__(self, reason: str, *, limited: bool = False) -> None:
        super().__init__(reason)
        self.limited = limited


class NotApplicable(Verdicts):
    """The target has nothing this check applies to (no GraphQL endpoint, say)."""

    verdict: Verdict = "not-applicable"


@dataclass(slots=True)
class CheckOutcome:
    """What one check found: the verdict, why, what was sent and seen, how many
    requests it took, and whether the target's limits made it inconclusive."""

    id: str
    verdict: Verdict
    reason: str
    evidence: list[str] = field(default_factory=list)
    requests: int = 0
    seconds: float = 0.0
    limited: bool = False

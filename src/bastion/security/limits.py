"""Rate specifications: ``"<count>/<n?><unit>[s]"``, as in ``100/15minutes`` or ``10/hour``.

The notation is the one of the ``limits`` library and express-rate-limit's docs, so
operators can carry their numbers over unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Rate", "parse_duration", "parse_rate"]

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|seconds?|minutes?|hours?|days?)?\s*$", re.IGNORECASE)
_SHORT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` events per ``window`` seconds."""

    count: int
    window: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("a rate must allow at least 1 event")
        if self.window < 1:
            raise ValueError("a rate window must be at least 1 second")

    def __str__(self) -> str:
        return f"{self.count}/{self.window}seconds"


def parse_rate(text: str) -> Rate:
    """Parse ``"100/15minutes"``; raises ``ValueError`` naming the expected form."""
    match = _RATE.match(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a rate; expected '<count>/<n?><second|minute|hour|day>[s]', "
            "e.g. '100/15minutes'"
        )
    count, n, unit = match.groups()
    return Rate(count=int(count), window=int(n or 1) * _UNITS[unit.lower()])


def parse_duration(text: str) -> int:
    """Parse ``"15m"``, ``"7d"``, ``"900"`` or ``"2hours"`` into seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration; expected e.g. '900', '15m', '7d'")
    n, unit = match.groups()
    unit = (unit or "s").lower()
    seconds = int(n) * (_SHORT.get(unit) or _UNITS[unit.rstrip("s")])
    if seconds < 1:
        raise ValueError(f"{text!r}: a duration must be at least 1 second")
    return seconds

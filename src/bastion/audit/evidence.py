"""What a check sent and saw, kept for the report with every secret masked.

Evidence lines are redacted twice over: tokens and cookie values are replaced by
placeholders by the client as it records them, and every line then passes through
:func:`bastion.security.redaction.redact_text` (JWTs, ``Bearer`` values, password and
cookie fields), so that a report can be uploaded to a CI system as it is.
"""

from __future__ import annotations

from bastion.security.redaction import redact_text

__all__ = ["Evidence"]

MAX_LINES = 40


class Evidence:
    """An append-only, bounded list of redacted lines. The first lines (the control)
    and the last ones (the verdict) are kept when a check sends more than fits."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        self._lines: list[str] = []
        self._dropped = 0
        self._secrets = secrets if secrets is not None else []

    def mask(self, value: str) -> None:
        """Never show ``value`` (a password the audit chose, a token) in any line."""
        if value and value not in self._secrets:
            self._secrets.append(value)

    def add(self, line: str) -> None:
        for secret in self._secrets:
            line = line.replace(secret, "[redacted]")
        line = redact_text(line)
        if len(self._lines) >= MAX_LINES:
            # Keep the first half (the controls); drop from the middle.
            del self._lines[MAX_LINES // 2]
            self._dropped += 1
        self._lines.append(line)

    def lines(self) -> list[str]:
        if not self._dropped:
            return list(self._lines)
        half = MAX_LINES // 2
        return [*self._lines[:half], f"... {self._dropped} more", *self._lines[half:]]

"""The service's sessions: :class:`~bastion.security.sessions.RefreshSessions` on the
service's database (``services.sessions``), which starts, rotates and ends them and
keeps the store's revocation flags in sync. What is left here is the call the user
routes make, in the shape they make it."""

from __future__ import annotations

from bastion.api.deps import Services

__all__ = ["end_sessions"]


async def end_sessions(
    services: Services, *, user_id: str, reason: str, keep: str | None = None
) -> int:
    """End every live session of ``user_id`` but ``keep``; how many were ended."""
    return await services.sessions.end_all(user_id, reason=reason, keep=keep)

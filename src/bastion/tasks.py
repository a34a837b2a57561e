"""Stopping the app's background tasks for certain, and within a bound."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["STOP_WITHIN", "stop"]

logger = logging.getLogger("bastion")

STOP_WITHIN = 5.0  # seconds a task gets to end once cancelled


async def stop(task: asyncio.Task[Any], *, within: float = STOP_WITHIN) -> None:
    """Cancel ``task`` and wait until it ends, at most ``within`` seconds.

    One ``cancel()`` and an unbounded ``await task`` is not enough for a worker that
    must stop: a cancellation that arrives just as an awaited operation completes can be
    lost (``asyncio.wait_for`` on Python 3.11 returns the result and drops it, and a
    library may catch it), and a loop that lost it runs on and waits for work that
    never comes. So the task is cancelled again each time it has had a moment to end,
    and given up on, with a warning, after ``within``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not task.done():
        left = deadline - loop.time()
        if left <= 0:
            logger.warning("background task %s did not stop within %.0f s", task.get_name(), within)
            return
        task.cancel()
        await asyncio.wait({task}, timeout=min(0.1, left))
    if not task.cancelled() and task.exception() is not None:
        logger.error("background task %s failed", task.get_name(), exc_info=task.exception())

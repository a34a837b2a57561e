"""Stopping a worker without cutting a request: what SIGTERM does under ``bastion serve``.

uvicorn already stops gracefully on SIGTERM: it closes its listening socket at once,
closes idle keep-alive connections, lets each request in flight finish (for at most
``timeout_graceful_shutdown`` seconds, ``BASTION_SHUTDOWN_TIMEOUT``; then they are
cancelled), runs the lifespan's shutdown and exits. Its supervisor (``--workers N``)
hands the signal on to each worker and waits for them.

What it lacks is the step before: a load balancer still sends requests to a worker
that has stopped listening, until it notices, and those requests fail. So here the
first SIGTERM only marks the worker as draining (``/readyz`` answers 503 from then on,
``services.draining``) and hands the signal on to uvicorn ``BASTION_SHUTDOWN_DRAIN``
seconds later. Meanwhile the worker serves as before, so the balancer, seeing the 503,
stops sending before anything is refused. Another SIGTERM meanwhile changes nothing
(``systemd`` and the supervisor may both send one); SIGINT (Ctrl-C) still stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from bastion.api.deps import Services

__all__ = ["drain_on_sigterm"]

logger = logging.getLogger("bastion")


@asynccontextmanager
async def _draining(services: Services, drain: float) -> AsyncIterator[None]:
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        # No server handler to hand the signal on to (not under uvicorn): leave it be.
        yield
        return
    loop = asyncio.get_running_loop()
    handed: list[asyncio.TimerHandle] = []

    def hand_on() -> None:
        handed.append(loop.call_later(drain, previous, signal.SIGTERM, None))

    def on_sigterm(signum: int, frame: Any) -> None:
        if services.draining:
            return
        services.draining = True
        logger.warning(
            "SIGTERM: draining for %g s (/readyz answers 503), then finishing the "
            "requests in flight and stopping",
            drain,
        )
        # A signal handler runs between two bytecodes of the loop's thread: schedule
        # through the thread-safe entry point, never touch the loop's state from here.
        loop.call_soon_threadsafe(hand_on)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        for timer in handed:
            timer.cancel()
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, previous)


def drain_on_sigterm(api: FastAPI, services: Services, *, drain: float) -> None:
    """While ``api``'s lifespan runs, the first SIGTERM sets ``services.draining`` and
    reaches the server's own handler (uvicorn's) ``drain`` seconds later. For the
    served app only (``create_served_app``): an app run inside tests or another server
    keeps the signal handling it has."""
    inner = api.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner(app) as state, _draining(services, drain):
            yield state

    api.router.lifespan_context = lifespan

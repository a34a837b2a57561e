"""Putting the metrics into an app: the request layer, and a task that samples gauges.

Gauges are state read off the services (hashes running, events not yet stored, the
store's circuit, the age of the last revocation sync), set once a second by a task of
each worker: in multiprocess mode a gauge cannot be computed at scrape time, since the
scrape is served by another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from bastion.metrics.dependencies import circuit_open
from bastion.metrics.registry import Metrics
from bastion.metrics.requests import RecordRequests
from bastion.security.asgi import ASGIApp
from bastion.tasks import stop

if TYPE_CHECKING:
    from fastapi import FastAPI

    from bastion.api.deps import Services

__all__ = ["SAMPLE_EVERY", "instrument", "sample"]

logger = logging.getLogger("bastion.metrics")

SAMPLE_EVERY = 1.0  # seconds between two samples of the gauges


def sample(metrics: Metrics, services: Services, pending: Callable[[], int]) -> None:
    """Set every gauge from the services as they stand now."""
    hasher = services.hasher
    metrics.hasher_busy.set(hasher.running)
    metrics.hasher_waiting.set(hasher.waiting)
    metrics.hasher_slots.set(2 * hasher.config.concurrency)  # trusted and untrusted
    metrics.store_circuit_open.set(1 if circuit_open(services.store) else 0)
    metrics.events_pending.set(pending())
    metrics.revocation_lag.set(time.monotonic() - services.revocations.checked_at)
    metrics.draining.set(1 if services.draining else 0)


async def _sample_forever(metrics: Metrics, services: Services, pending: Callable[[], int]) -> None:
    while True:
        try:
            sample(metrics, services, pending)
        except Exception:  # a gauge must never take the worker down
            logger.exception("could not sample the metrics")
        await asyncio.sleep(SAMPLE_EVERY)


def instrument(
    api: FastAPI, asgi: ASGIApp, services: Services, *, pending: Callable[[], int]
) -> ASGIApp:
    """``asgi`` inside :class:`RecordRequests`, and the gauges sampled while ``api``'s
    lifespan runs. ``services.metrics`` must be set; ``pending`` counts the security
    events not yet stored."""
    metrics = services.metrics
    if metrics is None:
        raise ValueError("instrument() needs services.metrics")
    inner = api.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner(app) as state:
            task = asyncio.create_task(
                _sample_forever(metrics, services, pending), name="metrics sampler"
            )
            try:
                yield state
            finally:
                await stop(task)
                with contextlib.suppress(Exception):
                    sample(metrics, services, pending)

    api.router.lifespan_context = lifespan
    return RecordRequests(asgi, metrics, api)

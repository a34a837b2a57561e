"""The app's background tasks stop for certain and within a bound, even when a
cancellation is lost (Python 3.11's ``asyncio.wait_for`` drops one that arrives as the
awaited operation completes; a library may catch one): otherwise the lifespan's
shutdown waits for them forever, and the worker never exits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgi_lifespan import LifespanManager

from bastion.app import create_app
from bastion.security.sessions import RefreshSessions
from bastion.tasks import stop


async def test_a_task_that_loses_cancellations_is_still_stopped() -> None:
    lost = 0

    async def loop_losing_cancellations() -> None:
        nonlocal lost
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if lost == 3:
                    raise
                lost += 1  # what a lost cancellation looks like from inside the loop

    task = asyncio.create_task(loop_losing_cancellations())
    await asyncio.sleep(0)
    await asyncio.wait_for(stop(task), timeout=10)
    assert task.cancelled()
    assert lost == 3


async def test_a_task_that_never_ends_is_given_up_on_after_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def deaf() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(deaf(), name="deaf")
    await asyncio.sleep(0)
    await asyncio.wait_for(stop(task, within=0.3), timeout=10)
    assert not task.done()
    assert "background task deaf did not stop within 0 s" in caplog.text
    release.set()
    task.cancel()
    await asyncio.wait_for(task, timeout=10)


# Without the fix, shutdown waits forever; this ends the run then, with every stack.
@pytest.mark.timeout(60)
async def test_the_app_stops_when_its_revocation_sync_loses_a_cancellation(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shutdown's cancellation reaches the sync loop inside a store or database call
    that swallows it; the loop goes on. Shutdown still ends, at the next try."""
    real = RefreshSessions.sync
    calls = 0
    inside = asyncio.Event()

    async def swallowing(sessions: RefreshSessions) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:  # the sync at start-up
            return await real(sessions)
        inside.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return False  # swallowed
        return False

    monkeypatch.setattr(RefreshSessions, "sync", swallowing)
    app = create_app(make_settings())
    manager = LifespanManager(app)
    await manager.__aenter__()
    try:
        await asyncio.wait_for(inside.wait(), timeout=10)  # the loop's next round
    finally:
        await asyncio.wait_for(manager.__aexit__(None, None, None), timeout=10)
    assert calls == 2

"""Auditing Bastion in process: the app (over the run's backends) behind an httpx
ASGI transport whose client address is the source address the audit chose, so that
Bastion's per-address limits see what a real server would. A variant (tests/audit/
variants.py) is the same app with one defence switched off."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from bastion.app import BastionApp
from bastion.audit.engine import run_audit
from bastion.audit.profile import DEFAULT_PROFILE, Profile
from bastion.audit.registry import select
from bastion.audit.target import Target
from bastion.audit.verdicts import CheckOutcome
from bastion.seed import seed_demo
from tests.audit.variants import PRODUCTION, VARIANTS

# The contract's limits (the suite's other tests run unlimited by default).
CONTRACT_LIMITS = {
    "rate_limit_global": "100/15minutes",
    "rate_limit_auth": "10/hour",
    "lockout": "5/15minutes",
}
TARGET = Target(url="http://127.0.0.1:8000", loopback=True, spread=True)

Audit = Callable[..., Awaitable[dict[str, CheckOutcome]]]


def asgi_transport(asgi: Any) -> Callable[[str | None], httpx.AsyncBaseTransport]:
    def make(address: str | None) -> httpx.AsyncBaseTransport:
        # An exception the app lets out is a 500 to the audit, as from a real server.
        return httpx.ASGITransport(
            app=asgi, client=(address or "127.0.0.1", 40000), raise_app_exceptions=False
        )

    return make


@pytest.fixture
def audit(
    start_app: Callable[..., Awaitable[BastionApp]], monkeypatch: pytest.MonkeyPatch
) -> Audit:
    """``await audit(["tokens.algorithm"], variant="alg-none-accepted")``: the outcome
    of each check run against Bastion (or the named variant), by id."""

    async def run(
        ids: list[str] | None, *, variant: str | None = None, profile: Profile = DEFAULT_PROFILE
    ) -> dict[str, CheckOutcome]:
        chosen = VARIANTS[variant] if variant else None
        # Bastion itself as it is deployed: production mode, with the demo catalogue.
        settings = {**CONTRACT_LIMITS, **(chosen.settings if chosen else PRODUCTION)}
        app = await start_app(**settings)
        if settings.get("env") == "production":
            await seed_demo(app.services.db)
        asgi: Any = chosen.build(app, monkeypatch) if chosen else app
        result = await run_audit(TARGET, profile, select(ids, None), transport=asgi_transport(asgi))
        return {c.id: o for c, o in result.outcomes}

    return run

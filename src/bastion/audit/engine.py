"""Runs the selected checks one after another against one target.

Checks run one at a time (a check that measures a limit must not share it with another
check's traffic) and each in its own bounds: :class:`~bastion.audit.client.Budget`
stops it at its request budget, :func:`asyncio.timeout` at its time budget. Whatever
a check raises becomes a verdict; nothing a target answers ends the audit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from bastion import __version__
from bastion.audit.client import Browser, Budget
from bastion.audit.context import AuditState, CheckContext, json_at
from bastion.audit.openapi import parse_openapi, read_openapi_file
from bastion.audit.profile import Profile, ProfileError
from bastion.audit.registry import Check
from bastion.audit.target import AddressPool, Target, TransportFactory, default_transport
from bastion.audit.verdicts import VERDICTS, CheckOutcome, Inconclusive, Verdicts
from bastion.security import BastionError

__all__ = ["AuditError", "AuditResult", "Observer", "Plan", "plan", "run_audit"]

logger = logging.getLogger("bastion.audit")


class AuditError(BastionError):
    """The audit could not run at all (the target does not answer)."""


class Observer(Protocol):
    def started(self, check: Check, index: int) -> None: ...

    def finished(self, check: Check, outcome: CheckOutcome) -> None: ...


@dataclass(frozen=True, slots=True)
class Plan:
    """What the audit announces before it sends anything."""

    max_requests: int
    locking: tuple[str, ...]
    accounts: str


def plan(checks: Sequence[Check], profile: Profile) -> Plan:
    locking = tuple(c.id for c in checks if c.locks_accounts)
    if profile.has("auth.register"):
        accounts = "accounts it registers itself (audit-<random>@example.com)"
    else:
        accounts = "the profile's test accounts: " + ", ".join(a.email for a in profile.accounts)
    # The probe, the OpenAPI document and the fixtures take a request each.
    total = sum(c.max_requests for c in checks) + 2 + len(profile.fixtures)
    return Plan(max_requests=total, locking=locking, accounts=accounts)


@dataclass(slots=True)
class AuditResult:
    target: str
    started: datetime
    version: str
    outcomes: list[tuple[Check, CheckOutcome]] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {v: 0 for v in VERDICTS}
        for _, outcome in self.outcomes:
            counts[outcome.verdict] += 1
        return {**counts, "requests": sum(o.requests for _, o in self.outcomes)}

    @property
    def failed(self) -> bool:
        return any(o.verdict == "fail" for _, o in self.outcomes)

    @property
    def limited(self) -> list[Check]:
        """Checks the target's own limits kept from a verdict."""
        return [c for c, o in self.outcomes if o.limited]


async def _prepare(state: AuditState) -> None:
    """Check that the target answers, then read the profile's fixtures."""
    ctx = CheckContext(state, Budget(2 + len(state.profile.fixtures), 30))
    try:
        browser = ctx.browser("probe")
        try:
            await browser.request("GET", state.profile.auth.me.path, record=False)
        except Inconclusive as exc:
            raise AuditError(f"{state.target.url}: {exc.reason}") from None
        await _load_openapi(state, browser)
        for name, fixture in state.profile.fixtures.items():
            try:
                response = await browser.request("GET", fixture.path, record=False)
                state.fixtures[name] = json_at(response.json(), fixture.pointer)
            except (Inconclusive, ValueError):
                state.fixtures[name] = None
    finally:
        await ctx.aclose()


async def _load_openapi(state: AuditState, browser: Browser) -> None:
    """The profile's OpenAPI document: a path on the target, a URL or a file. A wrong
    document raises ProfileError; a missing one too, unless the profile never named it
    (the contract's default location: Bastion serves none in production)."""
    where = state.profile.openapi
    explicit = "openapi" in state.profile.model_fields_set
    if not where or not state.profile.has("openapi"):
        return
    if where.startswith("file:"):
        state.openapi = read_openapi_file(Path(where.removeprefix("file:")))
        return
    try:
        response = await browser.request("GET", where, record=False)
    except Inconclusive as exc:
        raise ProfileError(f"OpenAPI document {where}: {exc.reason}") from None
    if response.status_code != 200:
        if explicit:
            raise ProfileError(
                f"OpenAPI document {where}: the target answered {response.status_code}"
            )
        return
    state.openapi = parse_openapi(response.content, where)


async def _run_one(state: AuditState, check: Check) -> CheckOutcome:
    budget = Budget(check.max_requests, check.max_seconds)
    ctx = CheckContext(state, budget)
    begun = time.monotonic()
    limited = False
    try:
        # A little beyond the budget's own deadline, which only a request checks.
        async with asyncio.timeout(check.max_seconds + 5):
            reason = await check.run(ctx)
        verdict = "pass"
    except Verdicts as exc:
        verdict, reason = exc.verdict, exc.reason
        limited = isinstance(exc, Inconclusive) and exc.limited
    except TimeoutError:
        verdict, reason = "inconclusive", f"the check ran out of time ({check.max_seconds:g} s)"
    except Exception as exc:
        # A defect of the check, not a verdict on the target: never a pass.
        logger.exception("check %s crashed", check.id)
        verdict, reason = "inconclusive", f"the check itself failed ({type(exc).__name__})"
    finally:
        await ctx.aclose()
    return CheckOutcome(
        id=check.id,
        verdict=verdict,  # type: ignore[arg-type]
        reason=reason,
        evidence=ctx.evidence.lines(),
        requests=budget.used,
        seconds=time.monotonic() - begun,
        limited=limited,
    )


async def run_audit(
    target: Target,
    profile: Profile,
    checks: Sequence[Check],
    *,
    transport: TransportFactory = default_transport,
    observer: Observer | None = None,
) -> AuditResult:
    """Audit ``target``. Raises :class:`AuditError` when it does not answer at all, and
    :class:`ProfileError` when the OpenAPI document the profile names is wrong."""
    state = AuditState(
        profile=profile,
        target=target,
        transport=transport,
        pool=AddressPool(spread=target.spread),
    )
    result = AuditResult(target=target.url, started=datetime.now(UTC), version=__version__)
    await _prepare(state)
    for index, check in enumerate(checks):
        if observer is not None:
            observer.started(check, index)
        outcome = await _run_one(state, check)
        result.outcomes.append((check, outcome))
        if observer is not None:
            observer.finished(check, outcome)
    return result

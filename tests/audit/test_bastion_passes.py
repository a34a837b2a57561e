"""Bastion, as it ships, passes every check of the audit with no profile."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.audit.engine import run_audit
from bastion.audit.profile import DEFAULT_PROFILE
from bastion.audit.registry import select
from tests.audit.conftest import CONTRACT_LIMITS, TARGET, Audit, asgi_transport
from tests.audit.variants import REAL_HASH


async def test_bastion_passes_every_check_in_process(audit: Audit) -> None:
    outcomes = await audit(None)
    not_passed = {
        i: (o.verdict, o.reason, o.evidence) for i, o in outcomes.items() if o.verdict != "pass"
    }
    assert not not_passed, not_passed


async def test_bastion_with_the_production_hash_cost_shows_no_timing_difference(
    start_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timing half of auth.enumeration, where it matters: with a hash that costs what
    it costs in production, unknown emails take as long as wrong passwords (the variant
    without the dummy hash fails the same check: tests/audit/variants.py)."""
    app = await start_app(**CONTRACT_LIMITS, **REAL_HASH)
    result = await run_audit(
        TARGET, DEFAULT_PROFILE, select(["auth.enumeration"], None), transport=asgi_transport(app)
    )
    ((_, outcome),) = result.outcomes
    assert outcome.verdict == "pass", (outcome.reason, outcome.evidence)

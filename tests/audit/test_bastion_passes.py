"""Bastion, as it ships, passes every check of the audit with no profile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bastion.audit.engine import run_audit
from bastion.audit.profile import DEFAULT_PROFILE, load_profile
from bastion.audit.registry import select
from bastion.audit.target import Target
from tests.audit.conftest import CONTRACT_LIMITS, TARGET, Audit, asgi_transport
from tests.audit.variants import PRODUCTION, REAL_HASH


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


async def test_with_its_openapi_document_bastion_passes_the_schema_driven_checks(
    audit: Audit, start_app: Any, tmp_path: Path
) -> None:
    """Production Bastion serves no OpenAPI document; a profile can name the file (here
    the development app's own). The responses then match their schemas field for field,
    and the invalid bodies come from the schema's bounds, lengths and enums."""
    development = await start_app()
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(development.fastapi.openapi()))
    profile_file = tmp_path / "profile.toml"
    profile_file.write_text('openapi = "openapi.json"\n')
    ids = ["authz.property-level", "input.validation"]
    outcomes = await audit(ids, profile=load_profile(profile_file))
    assert [o.verdict for o in outcomes.values()] == ["pass", "pass"], outcomes
    assert "against their OpenAPI schemas" in outcomes["authz.property-level"].reason
    assert "from its OpenAPI schema" in outcomes["input.validation"].reason


async def test_from_one_address_the_targets_limits_leave_checks_unjudged_and_say_so(
    start_app: Any,
) -> None:
    """A remote target sees a single address: once the global budget of that address is
    spent (here by ratelimit.global), later checks are inconclusive, marked as kept from
    a verdict by the target's limits, never passed."""
    app = await start_app(**CONTRACT_LIMITS, **PRODUCTION)
    one_address = Target(url=TARGET.url, loopback=True, spread=False)
    checks = select(["ratelimit.global", "graphql.limits"], None)
    result = await run_audit(one_address, DEFAULT_PROFILE, checks, transport=asgi_transport(app))
    verdicts = {c.id: o.verdict for c, o in result.outcomes}
    assert verdicts == {"ratelimit.global": "pass", "graphql.limits": "inconclusive"}
    assert [c.id for c in result.limited] == ["graphql.limits"]

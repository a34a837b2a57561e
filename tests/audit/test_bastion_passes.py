"""Bastion, as it ships, passes every check of the audit with no profile."""

from __future__ import annotations

from tests.audit.conftest import Audit


async def test_bastion_passes_every_check_in_process(audit: Audit) -> None:
    outcomes = await audit(None)
    not_passed = {
        i: (o.verdict, o.reason, o.evidence) for i, o in outcomes.items() if o.verdict != "pass"
    }
    assert not not_passed, not_passed

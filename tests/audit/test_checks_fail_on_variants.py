"""Every check passes on Bastion and fails on a Bastion with that one defence off: a
check that cannot fail proves nothing."""

from __future__ import annotations

import pytest

from bastion.audit.registry import REGISTRY, select
from tests.audit.conftest import Audit
from tests.audit.variants import VARIANTS

CASES = [(check, name) for name, variant in VARIANTS.items() for check in variant.fails]


@pytest.mark.parametrize(("check_id", "variant"), CASES, ids=[f"{c}-on-{v}" for c, v in CASES])
async def test_the_check_fails_on_the_variant_without_its_defence(
    audit: Audit, check_id: str, variant: str
) -> None:
    outcome = (await audit([check_id], variant=variant))[check_id]
    assert outcome.verdict == "fail", (outcome.reason, outcome.evidence)


def test_every_check_of_the_catalogue_fails_on_at_least_one_variant() -> None:
    select(None, None)  # loads the catalogue
    covered = {check for variant in VARIANTS.values() for check in variant.fails}
    assert set(REGISTRY) <= covered, sorted(set(REGISTRY) - covered)

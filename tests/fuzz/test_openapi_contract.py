"""Schemathesis over the app's own OpenAPI document, in-process and authenticated: no
operation answers a 5xx, and no response breaks what the document declares (status,
content type, headers, body schema), for valid and for invalid requests; then linked
sequences (create an order, read it, cancel it...) keep the contract too.

Every check Schemathesis has runs (server errors, status codes, content types, headers
and bodies against their schemas, schema-violating requests rejected, authentication
enforced, resources available after creation...), except positive_data_acceptance and
with 400/404/413 counted as rejections: ``tests/fuzz/conftest.py`` says why."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Flaky
from schemathesis import GenerationMode

from bastion.app import create_app
from bastion.config import load_settings

FUZZ = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _operations() -> list[tuple[str, str, GenerationMode]]:
    """Every operation of the document, positive and (when there is anything to make
    invalid) negative. Built without a database: the document does not need one."""
    app = create_app(load_settings(access_secret="a" * 48, refresh_secret="r" * 48))
    out = []
    for path, operations in app.fastapi.openapi()["paths"].items():
        for method, operation in operations.items():
            out.append((method.upper(), path, GenerationMode.POSITIVE))
            if operation.get("parameters") or operation.get("requestBody"):
                out.append((method.upper(), path, GenerationMode.NEGATIVE))
    return out


STATEFUL = settings(
    max_examples=40,
    stateful_step_count=6,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)

# The refresh cookie is not part of the document, so the fuzzer never holds one.
NO_SUCCESS_EXPECTED = {"POST /api/auth/refresh"}


@pytest.mark.parametrize(("method", "path", "mode"), _operations())
def test_no_operation_answers_a_server_error_or_breaks_its_declared_responses(
    api_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]
    statuses: list[int] = []

    @given(case=operation.as_strategy(mode, auth_storage=api_schema.auth))
    @FUZZ
    def fuzz(case: Any) -> None:
        statuses.append(case.call_and_validate().status_code)

    fuzz()
    assert statuses, "the fuzzer sent nothing"
    if mode is GenerationMode.POSITIVE and operation.label not in NO_SUCCESS_EXPECTED:
        # Guards the fuzz itself: valid cases must get past authentication and lookups.
        assert any(200 <= s < 300 for s in statuses), f"no success among {sorted(set(statuses))}"


def test_linked_sequences_keep_the_contract(api_schema: Any) -> None:
    """Scenarios that follow the links Schemathesis infers (an order's id from its 201
    into GET, cancel...). A live server's state moves on between scenarios (ids, orders
    already cancelled), so Hypothesis may find a scenario that no longer replays the same
    way (``Flaky``); every check failure is recorded when it happens, so none is lost."""
    failures: list[str] = []
    steps: list[str] = []

    class Recorded(api_schema.as_state_machine()):  # type: ignore[misc]
        def call(self, case: Any, **kwargs: Any) -> Any:
            try:
                return super().call(case, **kwargs)
            except Exception as exc:
                failures.append(f"{case.operation.label}: {exc!r}")
                raise

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            steps.append(f"{case.operation.label} -> {response.status_code}")
            try:
                super().validate_response(response, case, **kwargs)
            except Exception as exc:
                failures.append(f"{steps[-1]}: {exc}")
                raise

    for suite in range(5):
        with contextlib.suppress(Flaky):
            seed(suite)(Recorded).run(settings=STATEFUL)
        if len(steps) >= 200:
            break
    assert not failures, "\n".join(failures)
    # Guards the run itself: scenarios got past the first call into linked operations.
    linked = [s for s in steps if "{" in s and " -> 2" in s]
    assert len(steps) >= 100, sorted(set(steps))
    assert linked, sorted(set(steps))

"""Fixtures for the API tests."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.app import BastionApp


@pytest.fixture
def events(app: BastionApp) -> list[dict[str, Any]]:
    """Every security event the app emits from now on (the stored sink still gets them)."""
    recorded: list[dict[str, Any]] = []
    log = app.services.events
    downstream = log.sink

    def tee(record: dict[str, Any]) -> None:
        recorded.append(record)
        if downstream is not None:
            downstream(record)

    log.sink = tee
    return recorded

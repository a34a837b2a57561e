"""Fixtures for the attack suite: one module per OWASP API Security Top 10 (2023) risk,
each test an attacker's move and the defence that stops it.

Most of what these tests need they share with the directories they came from (api/,
auth/, security/): those fixtures are in tests/conftest.py. Only what the attacks alone
use is here."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.app import BastionApp
from tests.auth.conftest import DEVICE_COOKIE, REFRESH_COOKIE, claims_of
from tests.auth.forgeries import Material
from tests.conftest import client_for


@pytest.fixture
async def material(auth_app: BastionApp, account: dict[str, Any]) -> Material:
    """The tokens of one real sign-in."""
    async with client_for(auth_app) as c:
        r = await c.post(
            "/api/auth/login", json={"email": account["email"], "password": account["password"]}
        )
    assert r.status_code == 200, r.text
    access, refresh = r.json()["accessToken"], r.cookies[REFRESH_COOKIE]
    return Material(
        access, refresh, r.cookies[DEVICE_COOKIE], claims_of(access), claims_of(refresh)
    )

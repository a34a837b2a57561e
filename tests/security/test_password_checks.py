"""The password-strength check (zxcvbn, pure Python, up to ~90 ms on a long password)
runs in the hasher's bounded pool, never on the event loop: a flood of registrations
with long passwords cannot stall every other request."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from bastion.security import passwords
from bastion.security.exceptions import Unavailable
from bastion.security.passwords import HasherConfig, PasswordHasher
from tests.conftest import client_for

STRONG = "Velvet-Harbour-Quartz-Lantern-93"


@pytest.fixture
def checked_in(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of the thread each strength check ran on."""
    threads: list[str] = []
    real = passwords.password_problems

    def recording(password: str, *, context: tuple[str, ...] = ()) -> list[str]:
        threads.append(threading.current_thread().name)
        return real(password, context=context)

    monkeypatch.setattr(passwords, "password_problems", recording)
    return threads


async def test_registration_checks_the_password_off_the_event_loop(
    start_app: Any, checked_in: list[str]
) -> None:
    app = await start_app()
    async with client_for(app) as client:
        await client.register(password=STRONG)
        r = await client.post(
            "/api/auth/register",
            json={"email": "weak@example.com", "password": "a" * 128, "name": "W"},
        )
    assert r.status_code == 400
    assert len(checked_in) == 2
    assert all(name.startswith("argon2") for name in checked_in), checked_in
    assert threading.current_thread().name not in checked_in


async def test_a_password_change_checks_the_new_password_off_the_event_loop(
    start_app: Any, checked_in: list[str]
) -> None:
    app = await start_app()
    async with client_for(app) as client:
        user = await client.user()
        r = await client.post(
            "/api/users/me/password",
            json={"currentPassword": user["password"], "newPassword": STRONG},
            headers=user["headers"],
        )
    assert r.status_code == 204
    assert checked_in
    assert all(name.startswith("argon2") for name in checked_in), checked_in


class HeldArgon:
    """An Argon2 whose hash blocks until the test lets it go."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def hash(self, password: str) -> str:
        self.release.wait(10)
        return "held"

    def verify(self, hash: str, password: str) -> bool:
        return True

    def check_needs_rehash(self, hash: str) -> bool:
        return False


async def test_a_saturated_pool_refuses_the_check_at_once_as_it_refuses_a_hash(
    checked_in: list[str],
) -> None:
    argon = HeldArgon()
    hasher = PasswordHasher(HasherConfig(concurrency=1, queue=0), argon=argon)
    try:
        busy = asyncio.ensure_future(hasher.hash("anything-at-all"))
        await asyncio.sleep(0)  # one step: the hash takes the only slot
        assert hasher.running == 1
        with pytest.raises(Unavailable):
            await hasher.problems(STRONG)
        assert checked_in == []  # refused before any work
        argon.release.set()
        assert await busy == "held"
        assert await hasher.problems(STRONG) == []
    finally:
        argon.release.set()
        hasher.close()


async def test_lengths_out_of_range_are_refused_without_the_pool() -> None:
    hasher = PasswordHasher(HasherConfig(concurrency=1, queue=0))
    try:
        assert await hasher.problems("short") == ["must be at least 12 characters"]
        assert await hasher.problems("x" * 129) == ["must be at most 128 characters"]
    finally:
        hasher.close()

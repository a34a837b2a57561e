"""The app's lifespan can run again: started, stopped and started again (a test
harness, an embedding server that restarts its app), it serves as on the first start,
hashing, store and database included. Started twice at once it refuses clearly: two
lifespans would each close what the other still uses."""

from __future__ import annotations

from typing import Any

import pytest
from asgi_lifespan import LifespanManager

from bastion.app import create_app
from tests.auth.conftest import REFRESH_COOKIE, refresh_cookie_of
from tests.conftest import PASSWORD, client_for


async def _journey(app: Any, email: str, refresh: str | None) -> str:
    """Register, log in, read, refresh (the cookie of the previous start too): the
    new refresh cookie."""
    async with client_for(app) as client:
        user = await client.register(email=email)
        token = await client.login(user["email"])
        me = await client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert (await client.get("/readyz")).status_code == 200
        if refresh is not None:
            client.cookies.clear()
            cookie = {"cookie": f"{REFRESH_COOKIE}={refresh}"}
            r = await client.post("/api/auth/refresh", headers=cookie)
            assert r.status_code == 200, r.text
        r = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return refresh_cookie_of(r)


async def test_the_app_serves_again_after_a_stop_and_a_new_start(make_settings: Any) -> None:
    app = create_app(make_settings())
    refresh = None
    for start in range(3):
        async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):  # type: ignore[arg-type]
            refresh = await _journey(app, f"restart-{start}@example.com", refresh)


async def test_a_second_lifespan_while_the_first_runs_is_refused(make_settings: Any) -> None:
    app = create_app(make_settings())
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):  # type: ignore[arg-type]
        second = LifespanManager(app, startup_timeout=30, shutdown_timeout=30)  # type: ignore[arg-type]
        with pytest.raises(RuntimeError, match="already running"):
            await second.__aenter__()
        # The first one is untouched by the refusal.
        await _journey(app, "still-running@example.com", None)

"""The README's "Use the layer in your own app" block runs as printed, and defends."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Use the layer in your own app"
PASSWORD = "Correct-Horse-Battery-42"


def readme_app(folder: Path) -> Any:
    """The first Python block of the section, imported as a module of its own."""
    text = README.read_text()
    section = text[text.index(SECTION) :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the section has no python block"
    path = folder / "readme_app.py"
    path.write_text(match.group(1))
    spec = importlib.util.spec_from_file_location("readme_app", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(readme_app(tmp_path)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://readme.test") as c:
            yield c


async def test_the_readme_app_logs_in_and_protects_its_route(client: httpx.AsyncClient) -> None:
    answer = await client.post("/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    assert "'nonce-" in answer.headers["content-security-policy"]
    assert answer.headers["ratelimit-policy"] == '"global";q=100;w=900'
    token = answer.json()["access_token"]
    me = await client.get("/me", headers={"authorization": f"Bearer {token}"})
    assert me.json() == {"user_id": "1"}
    unsigned = token.rsplit(".", 1)[0]
    forged = await client.get("/me", headers={"authorization": f"Bearer {unsigned}.{'A' * 43}"})
    assert forged.status_code == 401
    assert forged.headers["content-type"] == "application/problem+json"


async def test_the_readme_app_locks_an_account_after_five_failures(
    client: httpx.AsyncClient,
) -> None:
    guesses = [
        await client.post("/login", json={"email": "ada@example.com", "password": f"guess-{i}"})
        for i in range(6)
    ]
    assert [g.status_code for g in guesses] == [401] * 5 + [429]
    right = await client.post("/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert right.status_code == 429

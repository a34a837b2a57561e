"""The API docs: served in development from this origin, absent in production."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import client_for


async def test_development_serves_the_docs_page_its_files_and_the_document(
    start_app: Any,
) -> None:
    app = await start_app()
    async with client_for(app) as client:
        page = await client.get("/docs")
        bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
        document = await client.get("/openapi.json")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None
    scripts = re.findall(r"<script ([^>]*)>", page.text)
    assert len(scripts) == 2
    assert all(f'nonce="{nonce.group(1)}"' in s and 'src="/' in s for s in scripts), scripts
    assert "https://" not in page.text
    assert bundle.status_code == 200
    assert "SwaggerUIBundle" in bundle.text
    assert bundle.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert document.json()["info"]["title"] == "Bastion"

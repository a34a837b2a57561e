"""``GET /docs`` in development: Swagger UI served from this origin, under the same CSP as
every other page.

FastAPI's own docs page loads Swagger UI from a CDN and starts it with an inline script;
the contract's CSP (``script-src 'self' 'nonce-...'``) blocks both, so that page stays
blank. Here the Swagger UI files come from the ``fastapi-offline`` package (a maintained
copy of ``swagger-ui-dist``), the start-up code is a static file rather than an inline
script, and both scripts also carry the response's nonce, so a stricter nonce-only policy
would still let them run. Nothing is fetched from another origin.
"""

from __future__ import annotations

import html
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from bastion.security.headers import csp_nonce

__all__ = ["SWAGGER_UI", "install_docs"]

SWAGGER_UI = Path(fastapi_offline.__file__).parent / "static"
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="/static/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<script src="/docs/assets/swagger-ui-bundle.js" nonce="{nonce}" defer></script>
<script src="/static/docs.js" nonce="{nonce}" data-openapi="{openapi}" defer></script>
</head>
<body>
<div id="swagger-ui"></div>
</body>
</html>
"""


def install_docs(app: FastAPI, *, openapi_url: str = "/openapi.json") -> None:
    """Serve the docs page at ``/docs`` and Swagger UI's files under ``/docs/assets``."""
    router = APIRouter(include_in_schema=False)
    title = html.escape(f"{app.title} API docs")
    openapi = html.escape(openapi_url, quote=True)

    @router.get("/docs", response_class=HTMLResponse)
    async def docs(request: Request) -> HTMLResponse:
        nonce = html.escape(csp_nonce(request.scope), quote=True)
        page = _PAGE.format(title=title, nonce=nonce, openapi=openapi)
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    app.include_router(router)
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_UI), name="docs-assets")

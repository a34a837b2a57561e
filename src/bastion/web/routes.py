"""``GET /`` (the storefront page, its scripts loaded through the CSP nonce) and ``/static``."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from bastion.security.headers import csp_nonce

__all__ = ["mount_static", "router"]

STATIC = Path(__file__).parent / "static"
router = APIRouter(include_in_schema=False)
_PAGE = (Path(__file__).parent / "index.html").read_text()


@router.get("/", response_class=HTMLResponse)
async def storefront(request: Request) -> HTMLResponse:
    nonce = html.escape(csp_nonce(request.scope), quote=True)
    return HTMLResponse(_PAGE.replace("{{nonce}}", nonce), headers={"Cache-Control": "no-store"})


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

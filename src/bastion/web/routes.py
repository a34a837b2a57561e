"""``GET /`` (the storefront page, its scripts loaded through the CSP nonce) and ``/static``."""

from __future__ import annotations

import html
import os
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from bastion.security.headers import csp_nonce

__all__ = ["mount_static", "router"]

STATIC = Path(__file__).parent / "static"
router = APIRouter(include_in_schema=False)
_PAGE = (Path(__file__).parent / "index.html").read_text()


@router.get("/", response_class=HTMLResponse)
async def storefront(request: Request) -> HTMLResponse:
    nonce = html.escape(csp_nonce(request.scope), quote=True)
    return HTMLResponse(_PAGE.replace("{{nonce}}", nonce), headers={"Cache-Control": "no-store"})


class _StaticFiles(StaticFiles):
    """Starlette's static files, with the charset of XML text named as well as that of
    ``text/*`` (an SVG is XML: ASVS V4.1.1). Every file here is UTF-8."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        media_type = response.headers.get("content-type", "")
        if media_type.endswith(("/xml", "+xml")):
            response.headers["content-type"] = f"{media_type}; charset=utf-8"
        return response


def mount_static(app: FastAPI) -> None:
    app.mount("/static", _StaticFiles(directory=STATIC), name="static")

"""Liveness and readiness; neither counts against any limit."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from bastion.api.deps import Svc
from bastion.api.errors import json_response
from bastion.db import DatabaseUnavailable
from bastion.store import StoreUnavailable

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz")
async def readyz(services: Svc) -> Response:
    if services.draining:  # told to stop: let the balancer send elsewhere from now on
        return json_response({"status": "draining"}, status=503)
    checks = {"database": "ok", "store": "ok"}
    try:
        await services.db.ping()
    except DatabaseUnavailable:
        checks["database"] = "unavailable"
    try:
        await services.store.ping()
    except StoreUnavailable:
        checks["store"] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    return json_response(
        {"status": "ok" if ready else "unavailable", **checks}, status=200 if ready else 503
    )

"""``/api/admin``: accounts and security events, for the admin role only."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from starlette.responses import Response

from bastion.api.deps import AdminUser, Svc
from bastion.api.errors import ApiError, json_response
from bastion.api.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, encode_cursor
from bastion.api.schemas import AdminUserOut, Page, user_out
from bastion.db import events, users
from bastion.store import StoreUnavailable

router = APIRouter(prefix="/api/admin", tags=["admin"])


def _ts(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@router.get("/users", response_model=Page[AdminUserOut])
async def list_users(
    admin: AdminUser, services: Svc, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Response:
    after = decode_cursor(cursor, str)[0] if cursor else None
    rows = await users.list_users(services.db, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    now = datetime.now(UTC)

    async def locked_until(email: str) -> str | None:
        try:
            left = await services.guard.locked_until(email)
        except StoreUnavailable:
            return None  # the lockout cannot be read; the rest of the page still can
        return _ts(now + timedelta(seconds=math.ceil(left))) if left else None

    locks = await asyncio.gather(*(locked_until(row["email"]) for row in rows))
    items = [
        {**user_out(row), "flagged": bool(row["flagged"]), "lockedUntil": locked}
        for row, locked in zip(rows, locks, strict=True)
    ]
    return json_response(
        {"items": items, "nextCursor": encode_cursor(rows[-1]["id"]) if more else None}
    )


@router.post("/users/{user_id}/unlock", status_code=204)
async def unlock_user(user_id: uuid.UUID, admin: AdminUser, services: Svc) -> Response:
    """Clears the account's lockout and its flag. 503 when the store is down: an admin
    must never be told an account is unlocked when it is not."""
    row = await users.get_user(services.db, user_id=str(user_id))
    if row is None:
        raise ApiError(404, "No such user.")
    await services.guard.unlock(row["email"])
    await users.set_flagged(services.db, user_id=row["id"], flagged=False)
    return Response(status_code=204)


@router.delete("/users/{user_id}/sessions", status_code=204)
async def end_user_sessions(
    user_id: uuid.UUID, request: Request, admin: AdminUser, services: Svc
) -> Response:
    """Ends every session of the user (ASVS V7.4.5): their refresh tokens stop rotating
    at once and their access tokens are refused on every instance within a second, as
    after their own logout-all. 204 also when they had none; 404 for no such user."""
    row = await users.get_user(services.db, user_id=str(user_id))
    if row is None:
        raise ApiError(404, "No such user.")
    ended = await services.sessions.end_all(row["id"], reason=f"ended by admin {admin.user_id}")
    services.events.emit(
        "auth.session.ended",
        request.scope,
        user_id=row["id"],
        reason=f"ended by admin {admin.user_id}: {ended} session(s)",
    )
    return Response(status_code=204)


@router.get("/security-events")
async def list_security_events(
    admin: AdminUser, services: Svc, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Response:
    after = decode_cursor(cursor, datetime, str) if cursor else None
    rows = await events.list_events(services.db, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {
            "id": r["id"],
            "ts": _ts(r["ts"]),
            "event": r["event"],
            "ip": r["ip"],
            "userId": r["user_id"],
            "method": r["method"],
            "path": r["path"],
            "requestId": r["request_id"],
            "reason": r["reason"],
        }
        for r in rows
    ]
    next_cursor = encode_cursor(rows[-1]["ts"], rows[-1]["id"]) if more else None
    return json_response({"items": items, "nextCursor": next_cursor})

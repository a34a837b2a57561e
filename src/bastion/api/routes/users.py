"""``/api/users/me``: the caller's own account."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from starlette.responses import Response

from bastion.api import attempts
from bastion.api.deps import CurrentUser, Svc
from bastion.api.errors import ApiError, json_response
from bastion.api.password_context import password_context
from bastion.api.schemas import ChangePassword, UpdateMe, UserOut, user_out
from bastion.api.sessions import end_sessions
from bastion.db import users
from bastion.security.exceptions import InvalidCredentials

router = APIRouter(prefix="/api/users", tags=["users"])


@router.get("/me", response_model=UserOut)
async def me(user: CurrentUser, services: Svc) -> Response:
    row = await users.get_user(services.db, user_id=user.user_id)
    if row is None:
        raise ApiError(401, "The token refers to no user.", headers={"WWW-Authenticate": "Bearer"})
    return json_response(user_out(row))


@router.patch("/me", response_model=UserOut)
async def update_me(body: UpdateMe, user: CurrentUser, services: Svc) -> Response:
    row = await users.update_name(services.db, user_id=user.user_id, name=body.name)
    if row is None:
        raise ApiError(401, "The token refers to no user.", headers={"WWW-Authenticate": "Bearer"})
    return json_response(user_out(row))


@router.post("/me/password", status_code=204)
async def change_password(
    body: ChangePassword, request: Request, user: CurrentUser, services: Svc
) -> Response:
    row = await users.get_user(services.db, user_id=user.user_id)
    if row is None:
        raise ApiError(401, "The token refers to no user.", headers={"WWW-Authenticate": "Bearer"})
    # The current password is a password guess like any login: it spends the IP's auth
    # budget and the account's lockout, reserved before any hashing or strength check,
    # so a stolen access token cannot be used to guess the password behind it (and take
    # the account over), nor make the server do costly work past the limits.
    with attempts.admit(services, trusted=False) as place:
        reservation = await attempts.reserve(services, request, account=row["email"], device=None)
        try:
            await services.hasher.verify(row["password_hash"], body.currentPassword, place=place)
        except InvalidCredentials:
            attempts.failed(
                services,
                request,
                reservation,
                user_id=user.user_id,
                reason="wrong current password on password change",
            )
            raise ApiError(
                400,
                "The current password is wrong.",
                errors=[{"pointer": "#/currentPassword", "detail": "is wrong"}],
            ) from None
        except Exception:
            # Not judged (hasher saturated, database down): the attempt does not count.
            await attempts.give_back(services, request, reservation)
            raise
    await attempts.give_back(services, request, reservation)
    problems = await services.hasher.problems(
        body.newPassword, context=password_context(row["email"], row["name"])
    )
    if problems:
        raise ApiError(
            400,
            "The new password is not acceptable.",
            errors=[{"pointer": "#/newPassword", "detail": p} for p in problems],
        )
    new_hash = await services.hasher.hash(body.newPassword)
    now = datetime.now(UTC)
    await users.update_password_hash(
        services.db, user_id=user.user_id, password_hash=new_hash, now=now
    )
    ended = await end_sessions(
        services, user_id=user.user_id, reason="password changed", keep=user.session_id
    )
    services.events.emit(
        "auth.password.changed",
        request.scope,
        user_id=user.user_id,
        reason=f"{ended} other session(s) ended",
    )
    return Response(status_code=204)

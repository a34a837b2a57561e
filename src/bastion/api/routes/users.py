"""``/api/users/me``: the caller's own account."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from bastion.api.deps import CurrentUser, Svc, accounts
from bastion.api.errors import ApiError, json_response, store_down
from bastion.api.schemas import ChangePassword, UpdateMe, UserOut, user_out
from bastion.db import users
from bastion.security import InvalidCredentials, StoreUnavailable, client_ip
from bastion.usecases.accounts import WeakPassword

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
    async def end_other_sessions() -> int:
        return await services.sessions.end_all(
            user.user_id, reason="password changed", keep=user.session_id
        )

    try:
        row = await accounts(services).change_password(
            user_id=user.user_id,
            current=body.currentPassword,
            new=body.newPassword,
            ip=client_ip(request.scope),
            scope=request.scope,
            end_other_sessions=end_other_sessions,
        )
    except InvalidCredentials:
        raise ApiError(
            400,
            "The current password is wrong.",
            errors=[{"pointer": "#/currentPassword", "detail": "is wrong"}],
        ) from None
    except WeakPassword as exc:
        raise ApiError(
            400,
            "The new password is not acceptable.",
            errors=[{"pointer": "#/newPassword", "detail": p} for p in exc.problems],
        ) from None
    except StoreUnavailable:  # the guard cannot count the attempt: it is not made
        raise store_down() from None
    if row is None:
        raise ApiError(401, "The token refers to no user.", headers={"WWW-Authenticate": "Bearer"})
    return Response(status_code=204)

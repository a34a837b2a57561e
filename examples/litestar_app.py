"""A Litestar app defended by ``bastion.security`` alone.

Run it: ``uvicorn --app-dir examples --factory litestar_app:create_app`` (settings: see
``accounts.py``). Routes: ``POST /auth/register``, ``POST /auth/login``,
``POST /auth/refresh``, ``POST /auth/logout``, ``GET /me`` (Bearer access token).

The layer's middleware is plain ASGI, so it wraps the whole Litestar app rather than
going in ``middleware=[...]``, which Litestar runs for matched routes only: this way a
404 carries the security headers and counts against the rate limit too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from accounts import Accounts, AppError, Settings, problem, tokens_body
from litestar import Litestar, Request, Response, get, post
from litestar.params import JSONBody

from bastion.security import (
    BastionError,
    BodyLimitConfig,
    BodyLimitMiddleware,
    ClientIPMiddleware,
    JsonOnlyMiddleware,
    RateLimitConfig,
    RateLimitMiddleware,
    SecurityHeadersMiddleware,
    Store,
    client_ip,
)


@dataclass(frozen=True, slots=True)
class Credentials:
    email: str
    password: str


@dataclass(frozen=True, slots=True)
class RefreshToken:
    refresh_token: str


def _ip(request: Request[Any, Any, Any]) -> str:
    # Litestar types its scope as a TypedDict; the layer reads it as the plain mapping it is.
    scope: Any = request.scope
    return client_ip(scope)


def create_app(
    settings: Settings | None = None, *, store: Store | None = None
) -> SecurityHeadersMiddleware:
    """The app; settings from the environment unless given (tests pass their own)."""
    settings = settings or Settings.from_env()
    accounts = Accounts(settings, store)

    @post("/auth/register", status_code=201)
    async def register(
        data: JSONBody[Credentials], request: Request[Any, Any, Any]
    ) -> dict[str, str]:
        user = await accounts.register(
            data.email, data.password, ip=_ip(request), scope=request.scope
        )
        return {"id": user.id, "email": user.email}

    @post("/auth/login", status_code=200)
    async def login(data: JSONBody[Credentials], request: Request[Any, Any, Any]) -> dict[str, Any]:
        issued = await accounts.login(
            data.email,
            data.password,
            ip=_ip(request),
            user_agent=request.headers.get("user-agent", ""),
            scope=request.scope,
        )
        return tokens_body(issued)

    @post("/auth/refresh", status_code=200)
    async def refresh(
        data: JSONBody[RefreshToken], request: Request[Any, Any, Any]
    ) -> dict[str, Any]:
        issued = await accounts.refresh_tokens(data.refresh_token, ip=_ip(request))
        return tokens_body(issued)

    @post("/auth/logout", status_code=204)
    async def logout(data: JSONBody[RefreshToken]) -> None:
        await accounts.logout(data.refresh_token)

    @get("/me")
    async def me(request: Request[Any, Any, Any]) -> dict[str, str]:
        user = await accounts.current_user(request.headers.get("authorization"))
        return {"id": user.id, "email": user.email}

    def refused(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        answer = problem(exc)
        return Response(
            answer.body,
            status_code=answer.status,
            headers=answer.headers,
            media_type="application/problem+json",
        )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with accounts.running():
            yield

    app: Any = Litestar(
        route_handlers=[register, login, refresh, logout, me],
        exception_handlers={BastionError: refused, AppError: refused},
        lifespan=[lifespan],
        openapi_config=None,
    )
    # Innermost first; the outermost, the headers, sees every answer.
    defended: Any = JsonOnlyMiddleware(app, prefix="/")
    defended = BodyLimitMiddleware(defended, BodyLimitConfig(max_bytes=settings.max_body_bytes))
    defended = RateLimitMiddleware(
        defended, RateLimitConfig(rate=settings.global_rate, prefix="/"), accounts.store
    )
    return SecurityHeadersMiddleware(ClientIPMiddleware(defended))

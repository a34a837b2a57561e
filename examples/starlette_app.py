"""A Starlette app defended by ``bastion.security`` alone.

Run it: ``uvicorn --app-dir examples --factory starlette_app:create_app`` (settings:
see ``accounts.py``). Routes: ``POST /auth/register``, ``POST /auth/login``,
``POST /auth/refresh``, ``POST /auth/logout``, ``GET /me`` (Bearer access token).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from accounts import Accounts, AppError, Settings, problem, tokens_body
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.security import (
    BastionError,
    BodyLimitConfig,
    BodyLimitMiddleware,
    ClientIPMiddleware,
    JsonOnlyMiddleware,
    RateLimitConfig,
    RateLimitMiddleware,
    SecurityHeadersConfig,
    SecurityHeadersMiddleware,
    Store,
    client_ip,
)


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise AppError(400, "The body is not JSON.") from None
    if not isinstance(body, dict):
        raise AppError(400, "The body must be a JSON object.")
    return body


def _field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise AppError(422, f"{name} is required (a string).")
    return value


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> Starlette:
    """The app; settings from the environment unless given (tests pass their own)."""
    settings = settings or Settings.from_env()
    accounts = Accounts(settings, store)

    async def register(request: Request) -> Response:
        body = await _json(request)
        user = await accounts.register(
            _field(body, "email"),
            _field(body, "password"),
            ip=client_ip(request.scope),
            scope=request.scope,
        )
        return JSONResponse({"id": user.id, "email": user.email}, status_code=201)

    async def login(request: Request) -> Response:
        body = await _json(request)
        issued = await accounts.login(
            _field(body, "email"),
            _field(body, "password"),
            ip=client_ip(request.scope),
            user_agent=request.headers.get("user-agent", ""),
            scope=request.scope,
        )
        return JSONResponse(tokens_body(issued))

    async def refresh(request: Request) -> Response:
        body = await _json(request)
        issued = await accounts.refresh_tokens(
            _field(body, "refresh_token"), ip=client_ip(request.scope)
        )
        return JSONResponse(tokens_body(issued))

    async def logout(request: Request) -> Response:
        await accounts.logout(_field(await _json(request), "refresh_token"))
        return Response(status_code=204)

    async def me(request: Request) -> Response:
        user = await accounts.current_user(request.headers.get("authorization"))
        return JSONResponse({"id": user.id, "email": user.email})

    async def refused(request: Request, exc: Exception) -> Response:
        answer = problem(exc)
        return Response(
            answer.body, answer.status, answer.headers, media_type="application/problem+json"
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with accounts.running():
            yield

    return Starlette(
        routes=[
            Route("/auth/register", register, methods=["POST"]),
            Route("/auth/login", login, methods=["POST"]),
            Route("/auth/refresh", refresh, methods=["POST"]),
            Route("/auth/logout", logout, methods=["POST"]),
            Route("/me", me),
        ],
        # Outermost first: every answer, refusals included, carries the headers.
        middleware=[
            Middleware(SecurityHeadersMiddleware, SecurityHeadersConfig()),
            Middleware(ClientIPMiddleware),
            Middleware(
                RateLimitMiddleware,
                RateLimitConfig(rate=settings.global_rate, prefix="/"),
                accounts.store,
            ),
            Middleware(BodyLimitMiddleware, BodyLimitConfig(max_bytes=settings.max_body_bytes)),
            Middleware(JsonOnlyMiddleware, prefix="/"),
        ],
        exception_handlers={BastionError: refused, AppError: refused},
        lifespan=lifespan,
    )

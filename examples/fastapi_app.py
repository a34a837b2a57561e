"""A FastAPI app defended by ``bastion.security`` alone.

Run it: ``uvicorn --app-dir examples --factory fastapi_app:create_app`` (settings: see
``accounts.py``). Routes: ``POST /auth/register``, ``POST /auth/login``,
``POST /auth/refresh``, ``POST /auth/logout``, ``GET /me`` (Bearer access token).
"""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations at
# run time, and ``Depends(current_user)`` names a local of create_app.

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from accounts import Accounts, AppError, Settings, User, problem, tokens_body
from fastapi import Depends, FastAPI, Header, Request, Response
from pydantic import BaseModel

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


class Credentials(BaseModel):
    email: str
    password: str


class RefreshToken(BaseModel):
    refresh_token: str


class Account(BaseModel):
    id: str
    email: str


class Tokens(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> FastAPI:
    """The app; settings from the environment unless given (tests pass their own)."""
    settings = settings or Settings.from_env()
    accounts = Accounts(settings, store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with accounts.running():
            yield

    # No /docs: Swagger UI loads scripts from a CDN, which the CSP refuses.
    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    async def current_user(authorization: Annotated[str | None, Header()] = None) -> User:
        return await accounts.current_user(authorization)

    @app.post("/auth/register", status_code=201)
    async def register(body: Credentials, request: Request) -> Account:
        user = await accounts.register(
            body.email, body.password, ip=client_ip(request.scope), scope=request.scope
        )
        return Account(id=user.id, email=user.email)

    @app.post("/auth/login")
    async def login(body: Credentials, request: Request) -> Tokens:
        issued = await accounts.login(
            body.email,
            body.password,
            ip=client_ip(request.scope),
            user_agent=request.headers.get("user-agent", ""),
            scope=request.scope,
        )
        return Tokens(**tokens_body(issued))

    @app.post("/auth/refresh")
    async def refresh(body: RefreshToken, request: Request) -> Tokens:
        issued = await accounts.refresh_tokens(body.refresh_token, ip=client_ip(request.scope))
        return Tokens(**tokens_body(issued))

    @app.post("/auth/logout", status_code=204)
    async def logout(body: RefreshToken) -> None:
        await accounts.logout(body.refresh_token)

    @app.get("/me")
    async def me(user: Annotated[User, Depends(current_user)]) -> Account:
        return Account(id=user.id, email=user.email)

    async def refused(request: Request, exc: Any) -> Response:
        answer = problem(exc)
        return Response(
            answer.body, answer.status, answer.headers, media_type="application/problem+json"
        )

    app.add_exception_handler(BastionError, refused)
    app.add_exception_handler(AppError, refused)
    # add_middleware puts each new one outside the others: the last added runs first.
    app.add_middleware(JsonOnlyMiddleware, prefix="/")
    app.add_middleware(BodyLimitMiddleware, BodyLimitConfig(max_bytes=settings.max_body_bytes))
    app.add_middleware(
        RateLimitMiddleware, RateLimitConfig(rate=settings.global_rate, prefix="/"), accounts.store
    )
    app.add_middleware(ClientIPMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    return app

"""``create_app(settings)``: the service, wired.

The request path runs outside-in through pure ASGI middleware, then FastAPI::

    MarkReturning -> SecurityHeaders -> RequestId -> AllowedHosts -> ClientIP
        -> RateLimit(global) -> BodyLimit -> JsonOnly -> ShedAttempts -> CachedPages
        -> FastAPI (routes, dependencies, problem details)

FastAPI's own error middleware sits inside the security layer, so even an unexpected
error leaves with the security headers and a request id.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from bastion import __version__
from bastion.api.deps import Services, revoked_flag
from bastion.api.errors import PROBLEM_BASE, install_error_handlers
from bastion.api.event_names import EVENT_NAMES
from bastion.api.graphql import router as graphql_router
from bastion.api.openapi import install_openapi
from bastion.api.page_cache import CachedPages
from bastion.api.routes import admin, auth, catalogue, health, orders, users
from bastion.api.shedding import MarkReturning, ShedAttempts
from bastion.config import Settings, load_settings
from bastion.db import DatabaseUnavailable, open_configured
from bastion.db import events as event_rows
from bastion.db.migrations import migrate
from bastion.security import (
    AllowedHostsConfig,
    AllowedHostsMiddleware,
    AttemptGuard,
    BodyLimitConfig,
    BodyLimitMiddleware,
    ClientIPConfig,
    ClientIPMiddleware,
    FirstPerWindow,
    GuardConfig,
    HasherConfig,
    Hit,
    JsonOnlyMiddleware,
    OriginPolicy,
    PasswordHasher,
    RateLimitConfig,
    RateLimitMiddleware,
    Receive,
    RefreshSessions,
    RequestIdMiddleware,
    Scope,
    Secret,
    SecurityEventLog,
    SecurityHeadersConfig,
    SecurityHeadersMiddleware,
    Send,
    SessionConfig,
    SqlSessionStore,
    TokenCodec,
    TokenConfig,
    VerifiedTokenCache,
    client_ip,
    open_store,
    rate_key,
)
from bastion.tasks import stop
from bastion.usecases.attempts import AttemptEvents

if TYPE_CHECKING:
    from bastion.metrics.registry import Metrics

__all__ = ["BastionApp", "create_app", "create_served_app"]

# The health probes: answered whatever the Host, and never counted by the global limit.
HEALTH_PATHS = frozenset({"/healthz", "/readyz"})

logger = logging.getLogger("bastion")


class EventWriter:
    """Stores security events in batches, off the request path. Bounded: if the database
    stays down, the oldest unsaved events are dropped (they were logged already)."""

    MAX_PENDING = 10_000

    def __init__(self) -> None:
        self.pending: list[dict[str, Any]] = []
        self.wake = asyncio.Event()

    def __call__(self, record: dict[str, Any]) -> None:
        self.pending.append(record)
        if len(self.pending) > self.MAX_PENDING:
            del self.pending[: len(self.pending) - self.MAX_PENDING]
        self.wake.set()

    async def flush(self, services: Services) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        try:
            await event_rows.insert_events(services.db, batch)
        except DatabaseUnavailable:
            self.pending[:0] = batch
        except Exception:
            # A batch the database refuses would be refused again: drop it (every event
            # was logged already) rather than let the writer task die.
            logger.exception("could not store %d security event(s)", len(batch))

    async def run(self, services: Services) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            await asyncio.sleep(0.2)  # gather a batch
            await self.flush(services)


def _secret_list(current: Any, previous: Any) -> list[Secret]:
    keys = [Secret(current.get_secret_value())]
    if previous is not None and previous.get_secret_value():
        keys.append(Secret(previous.get_secret_value()))
    return keys


def _metrics(settings: Settings) -> Metrics | None:
    """The app's metrics when ``BASTION_METRICS_ADDRESS`` is set; imported only then."""
    if settings.metrics_address is None:
        return None
    from bastion.metrics.registry import Metrics

    return Metrics()


def build_services(
    settings: Settings, writer: EventWriter, metrics: Metrics | None = None
) -> Services:
    store = open_store(settings.redis_url)
    db = open_configured(settings)
    if metrics is not None:  # count their failures
        from bastion.metrics.dependencies import metered_database, metered_store

        store, db = metered_store(store, metrics), metered_database(db, metrics)
    access_keys = _secret_list(settings.access_secret, settings.access_secret_previous)
    refresh_keys = _secret_list(settings.refresh_secret, settings.refresh_secret_previous)
    # The device-cookie key is derived from the refresh secret: one secret fewer to run.
    device_key = Secret(
        hmac.new(refresh_keys[0].reveal(), b"bastion device cookie", hashlib.sha256).digest()
    )

    def codec(typ: str, keys: list[Secret], ttl: int) -> TokenCodec:
        return TokenCodec(
            TokenConfig(
                typ=typ,
                keys=keys,
                issuer=settings.token_issuer,
                audience=settings.token_audience,
                ttl=ttl,
            )
        )

    access = codec("access", access_keys, settings.access_ttl)
    events = SecurityEventLog(names=EVENT_NAMES, sink=writer)
    return Services(
        settings=settings,
        db=db,
        store=store,
        hasher=PasswordHasher(
            HasherConfig(
                memory_kib=settings.argon2_memory_kib,
                time_cost=settings.argon2_time_cost,
                parallelism=settings.argon2_parallelism,
                concurrency=settings.hash_concurrency,
                queue=settings.hash_queue,
                max_wait=settings.hash_max_wait,
            )
        ),
        sessions=RefreshSessions(
            SqlSessionStore(db),
            store,
            access=access,
            refresh=codec("refresh", refresh_keys, settings.refresh_ttl),
            config=SessionConfig(
                access_ttl=settings.access_ttl,
                refresh_ttl=settings.refresh_ttl,
                max_age=settings.session_max_age,
            ),
        ),
        verified=VerifiedTokenCache(clock=access.config.clock),
        device=codec("device", [device_key], 180 * 86400),
        events=events,
        guard=AttemptGuard(
            store,
            GuardConfig(
                per_ip=settings.rate_limit_auth,
                per_account=settings.lockout,
                key=_guard_key(settings),
            ),
            observer=AttemptEvents(events, settings.rate_limit_auth, metrics),
        ),
        origins=OriginPolicy(settings.public_origin, loopback=not settings.production),
        metrics=metrics,
        mfa_keys=(
            tuple(_secret_list(settings.mfa_secret, settings.mfa_secret_previous))
            if settings.mfa_secret is not None
            else ()
        ),
    )


def _guard_key(settings: Settings) -> bytes:
    """The key of the guard's account digests: derived from the access secret, which
    every instance sharing the store has (rotating it starts lockout counts afresh)."""
    secret: Any = settings.access_secret  # load_settings fills it in, or refuses to start
    label = b"bastion guard account keys"
    return hmac.new(secret.get_secret_value().encode(), label, hashlib.sha256).digest()


def _route_template(api: FastAPI) -> Any:
    """The template (``/api/orders/{order_id}``) of the API route a path would reach, from
    the OpenAPI paths (public on every FastAPI version), compiled on first use."""
    import re
    from functools import cache

    @cache
    def templates() -> tuple[tuple[re.Pattern[str], str], ...]:
        try:
            schema = api.openapi()
        except Exception:  # an event must never fail over a name: fall back to /api/*
            logger.exception("cannot list the API's routes for security events")
            return ()
        paths = sorted(schema.get("paths", {}), key=lambda p: (p.count("{"), p))
        return tuple(
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(p)) + "$"), p)
            for p in paths
        )

    def template(scope: Scope) -> str | None:
        path = scope.get("path", "")
        return next((p for regex, p in templates() if regex.match(path)), None)

    return template


class BastionApp:
    """The ASGI application: the security middleware around the FastAPI app."""

    def __init__(self, fastapi: FastAPI, asgi: Any, services: Services) -> None:
        self.fastapi = fastapi
        self.services = services
        self._asgi = asgi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._asgi(scope, receive, send)


def _warn_about(settings: Settings) -> bool:
    """Log what production is missing; whether the storefront is served."""
    if not settings.production:
        return True
    if not settings.allowed_hosts:
        logger.warning(
            "BASTION_ALLOWED_HOSTS is empty: any Host header is answered; behind a proxy"
            " or a cache, set it to the names the service is published under"
        )
    if settings.public_origin is None:
        logger.warning(
            "BASTION_PUBLIC_ORIGIN is not set: the storefront is not served and browser"
            " calls to refresh and logout are refused; set it to the origin browsers use"
        )
        return False
    return True


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def _one_at_a_time(lifespan: Lifespan) -> Lifespan:
    """``lifespan``, refusing to start while it runs already: the app's services are
    one set, and a second lifespan would close them under the first at its end. Once
    stopped, it may start again (each start opens what the last stop closed)."""
    running = False

    @asynccontextmanager
    async def guarded(api: FastAPI) -> AsyncIterator[None]:
        nonlocal running
        if running:
            raise RuntimeError("the app's lifespan is already running: serve it once")
        running = True
        try:
            async with lifespan(api):
                yield
        finally:
            running = False

    return guarded


def create_app(settings: Settings | None = None) -> BastionApp:
    settings = settings or load_settings()
    storefront = _warn_about(settings)
    writer = EventWriter()
    services = build_services(settings, writer, _metrics(settings))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await migrate(services.db)
        if not settings.production:
            from bastion.seed import seed_demo

            await seed_demo(services.db)
        await services.hasher.warm_up()
        task = asyncio.create_task(writer.run(services), name="security event writer")
        try:
            async with services.sessions.running():
                yield
        finally:
            await stop(task)
            await writer.flush(services)
            await services.store.aclose()
            await services.db.close()
            services.hasher.close()

    docs = not settings.production
    api = FastAPI(
        title="Bastion",
        version=__version__,
        summary="The orders API of 'Securing a Node.js REST API', with every defence in place.",
        lifespan=_one_at_a_time(lifespan),
        docs_url=None,  # bastion.web.docs serves a page that keeps the CSP
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        # /api/orders/ is a 404 like any unknown path: a redirect would be built from
        # the client's Host header (an open redirect, a poisoned cache).
        redirect_slashes=False,
    )
    api.state.services = services
    api.state.events = services.events
    install_error_handlers(api)
    routers = [m.router for m in (health, auth, users, catalogue, orders, admin)]
    routers.append(graphql_router)
    for router in routers:
        api.include_router(router)
    install_openapi(api, routers)
    if storefront:
        from bastion.web import routes as web

        api.include_router(web.router)
        web.mount_static(api)
    if docs:
        from bastion.web.docs import install_docs

        install_docs(api)
    # Events raised before routing (rate limits) name the route's template, not the path.
    services.events.route_path = _route_template(api)

    refusals = FirstPerWindow()

    async def on_exceeded(scope: Scope, name: str, hit: Hit) -> None:
        if services.metrics is not None:
            services.metrics.refused("global")
        # One event per client and window, not one per refused request.
        earlier = refusals.first(f"{name}:{rate_key(client_ip(scope))}", hit.window)
        if earlier is None:
            return
        reason = f"{name} limit"
        if earlier:
            reason += f"; {earlier} more refused in the client's previous window"
        services.events.emit("ratelimit.exceeded", scope, reason=reason)

    asgi: Any = CachedPages(api, services.catalogue_pages, "/api/products")
    metrics = services.metrics
    asgi = ShedAttempts(
        asgi,
        hasher=lambda: services.hasher,  # the routes' hasher, whenever it is replaced
        device=services.device,
        returning=services.returning,
        paths=frozenset({"/api/auth/login", "/api/auth/register"}),
        cookie=auth.DEVICE_COOKIE,
        on_shed=metrics.shed.inc if metrics is not None else None,
    )
    asgi = JsonOnlyMiddleware(asgi, prefix="/api/", problem_base=PROBLEM_BASE)
    asgi = BodyLimitMiddleware(asgi, BodyLimitConfig(settings.max_body_bytes, PROBLEM_BASE))
    asgi = RateLimitMiddleware(
        asgi,
        RateLimitConfig(
            settings.rate_limit_global,
            prefix="/api/",
            exempt=HEALTH_PATHS,
            problem_base=PROBLEM_BASE,
        ),
        services.store,
        on_exceeded=on_exceeded,
        flag_for=revoked_flag,
    )
    asgi = ClientIPMiddleware(asgi, ClientIPConfig(tuple(settings.trusted_proxies)))
    if settings.allowed_hosts:  # an empty list answers any Host: no layer to pass through
        hosts = AllowedHostsConfig(
            tuple(settings.allowed_hosts), exempt=HEALTH_PATHS, problem_base=PROBLEM_BASE
        )
        asgi = AllowedHostsMiddleware(asgi, hosts)
    asgi = RequestIdMiddleware(asgi)
    asgi = SecurityHeadersMiddleware(
        # Plain-HTTP development on loopback: upgrading would break the storefront.
        asgi,
        SecurityHeadersConfig(upgrade_insecure_requests=settings.production),
    )
    asgi = MarkReturning(
        asgi,
        device=services.device,
        returning=services.returning,
        path="/api/auth/login",
        cookie=auth.DEVICE_COOKIE,
    )
    if services.metrics is not None:  # off: no layer at all
        from bastion.metrics.instrument import instrument

        asgi = instrument(api, asgi, services, pending=lambda: len(writer.pending))
    return BastionApp(api, asgi, services)


# Young-generation collections every GC_YOUNG_THRESHOLD allocations, not CPython's 700.
GC_YOUNG_THRESHOLD = 20_000


def create_served_app() -> BastionApp:
    """:func:`create_app` for ``bastion serve`` (called in each worker process), with the
    garbage collector tuned for a long-running server, and SIGTERM draining the worker
    before it stops (:mod:`bastion.shutdown`).

    A request allocates thousands of short-lived objects that reference counting frees
    at once; CPython's default still runs a young-generation collection every 700
    allocations, each walking objects about to die anyway (under a login flood, 8% of
    the event loop's time). The app's own long-lived objects are frozen out of every
    collection, and young collections run about thirty times less often: a few
    megabytes of garbage more between them, no change to what is freed."""
    app = create_app()
    from bastion.shutdown import drain_on_sigterm

    drain_on_sigterm(app.fastapi, app.services, drain=app.services.settings.shutdown_drain)
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
    return app

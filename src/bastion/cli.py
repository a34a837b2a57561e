"""``bastion``: serve, migrate, seed-demo, users, check, audit, ``--version``."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import ipaddress
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from bastion import __version__
from bastion.config import ConfigError, Settings, load_settings

T = TypeVar("T")
app = typer.Typer(
    help="Bastion: a secure-by-default orders API.", no_args_is_help=True, add_completion=False
)
users_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")
console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        print(f"bastion {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Bastion: a secure-by-default orders API."""


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        console.print(f"[bold red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None


def _describe(settings: Settings) -> str:
    db = "PostgreSQL" if settings.database_url else f"SQLite ({settings.sqlite_path})"
    store = "in-process store"
    if settings.redis_url:
        store = "Redis Cluster" if settings.redis_url.startswith(("redis+", "rediss+")) else "Redis"
    return f"{settings.env} mode, {db}, {store}"


def _run(factory: Callable[[], Awaitable[T]]) -> T:
    from bastion.db import DatabaseUnavailable

    try:
        return asyncio.run(factory())  # type: ignore[arg-type]
    except DatabaseUnavailable as exc:
        console.print(f"[bold red]database unavailable:[/] {exc}")
        raise typer.Exit(1) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (needs Redis if > 1).")] = 1,
) -> None:
    """Create or migrate the database, then serve the API."""
    settings = _settings()
    if workers > 1 and not settings.redis_url:
        console.print(
            "[bold red]refusing to start:[/] --workers > 1 needs BASTION_REDIS_URL, or each "
            "worker would keep its own limits and sessions."
        )
        raise typer.Exit(2)
    if workers > 1 and not settings.database_url:
        console.print(
            "[bold red]refusing to start:[/] --workers > 1 needs BASTION_DATABASE_URL (PostgreSQL)."
        )
        raise typer.Exit(2)

    async def prepare() -> None:
        from bastion.db import open_configured
        from bastion.db.migrations import migrate

        db = open_configured(settings)
        try:
            applied = await migrate(db)
            for step in applied:
                console.print(f"migrated: {step.version} {step.name}")
        finally:
            await db.close()

    metrics = settings.metrics_address
    if metrics is not None and metrics[1] == port and _overlap(metrics[0], host):
        console.print(
            "[bold red]refusing to start:[/] BASTION_METRICS_ADDRESS must not be the API's "
            "own address: metrics are never served to the API's clients."
        )
        raise typer.Exit(2)
    _run(prepare)
    console.print(f"Bastion on http://{host}:{port} ({_describe(settings)}, {workers} worker(s))")
    # uvicorn re-raises the SIGTERM it stopped on, with the handler found at its start:
    # exit through Python then, so that the clean-up below runs.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    with contextlib.ExitStack() as stack:
        if metrics is not None:
            from bastion.metrics.exporter import exporting

            where = f"{_url_host(metrics[0])}:{metrics[1]}"
            try:
                stack.enter_context(exporting(*metrics))
            except OSError as exc:
                console.print(f"[bold red]cannot serve metrics on {where}:[/] {exc}")
                raise typer.Exit(2) from None
            console.print(f"metrics on http://{where}/metrics")
        _serve(settings, host, port, workers)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _overlap(a: str, b: str) -> bool:
    """Whether listening on ``a`` and ``b`` (same port) would be the same socket."""

    def norm(h: str) -> str:
        if h == "localhost":
            return "127.0.0.1"
        try:
            addr = ipaddress.ip_address(h)
        except ValueError:
            return h
        return "*" if addr.is_unspecified else str(addr)

    na, nb = norm(a), norm(b)
    return na == nb or "*" in (na, nb)


def _serve(settings: Settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    from bastion.api.event_names import SERVER_LOGGERS
    from bastion.security import configure_logging, logging_config

    configure_logging(loggers=SERVER_LOGGERS)
    uvicorn.run(
        "bastion.app:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        proxy_headers=False,  # Bastion resolves the client IP itself (BASTION_TRUSTED_PROXIES)
        server_header=False,
        date_header=True,
        log_config=logging_config(
            loggers=SERVER_LOGGERS
        ),  # applied in every worker process, not just this one
        lifespan="on",
        # Requests in flight get this long to finish once SIGTERM's drain is over
        # (bastion.shutdown); then they are cancelled and the worker exits.
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )


@app.command("check")
def check_cmd(
    wait: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for each dependency.")
    ] = 2.0,
) -> None:
    """Validate the configuration, print it (secrets masked), and check that the
    database, the store (each cluster node) and the migrations are ready: exit 0 if so,
    1 if not (a deploy gate)."""
    from rich.markup import escape

    from bastion.check import check_ready, masked_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        console.print(f"[bold red]configuration error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
    out = Console(highlight=False, soft_wrap=True)
    out.print("[bold]configuration[/] (valid)")
    for name, value in masked_settings(settings):
        out.print(f"  {name} = {escape(value)}")
    rows = asyncio.run(check_ready(settings, wait=wait))
    out.print("[bold]readiness[/]")
    for row in rows:
        mark = "ok  " if row.ok else "FAIL"
        out.print(f"  {mark} {row.name}: {escape(row.detail)}")
    ready = all(row.ok for row in rows)
    out.print("ready" if ready else "[bold red]not ready[/]")
    raise typer.Exit(0 if ready else 1)


@app.command("migrate")
def migrate_cmd() -> None:
    """Create the database schema or bring it up to date."""
    settings = _settings()

    async def go() -> int:
        from bastion.db import open_configured
        from bastion.db.migrations import migrate

        db = open_configured(settings)
        try:
            return len(await migrate(db))
        finally:
            await db.close()

    n = _run(go)
    console.print(f"{_describe(settings)}: {n} migration(s) applied, schema up to date.")


@app.command("seed-demo")
def seed_demo_cmd() -> None:
    """Add the demo catalogue and promo codes (idempotent)."""
    settings = _settings()

    async def go() -> tuple[int, int]:
        from bastion.db import open_configured
        from bastion.db.migrations import migrate
        from bastion.seed import seed_demo

        db = open_configured(settings)
        try:
            await migrate(db)
            return await seed_demo(db)
        finally:
            await db.close()

    products, promos = _run(go)
    console.print(f"demo catalogue: {products} product(s) and {promos} promo code(s) added.")


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="The account's email.")],
    admin: Annotated[
        bool, typer.Option("--admin", help="Give the account the admin role.")
    ] = False,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
) -> None:
    """Create an account; the password comes from BASTION_NEW_PASSWORD or a prompt."""
    from pydantic import ValidationError
    from rich.markup import escape

    from bastion.api.errors import validation_errors
    from bastion.api.password_context import password_context
    from bastion.api.schemas import RegisterRequest
    from bastion.security import password_problems

    settings = _settings()
    password = os.environ.get("BASTION_NEW_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            console.print(
                "[bold red]no password:[/] set BASTION_NEW_PASSWORD or run in a terminal."
            )
            raise typer.Exit(2)
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            console.print("[bold red]the passwords differ.[/]")
            raise typer.Exit(2)
    try:
        body = RegisterRequest(email=email, password=password, name=name or email.split("@")[0])
    except ValidationError as exc:
        # Field and reason only: pydantic's own message would quote the input, password too.
        where = {"#/email": "--email", "#/name": "--name", "#/password": "the password"}
        reasons = [
            f"{where.get(e['pointer'], e['pointer'])} {e['detail']}"
            for e in validation_errors(exc.errors())
        ]
        console.print(f"[bold red]invalid account:[/] {escape('; '.join(reasons))}")
        raise typer.Exit(2) from None
    problems = password_problems(password, context=password_context(body.email, body.name))
    if problems:
        console.print(f"[bold red]password refused:[/] it {problems[0]}")
        raise typer.Exit(2)

    async def go() -> None:
        from bastion.db import IntegrityConflict, open_configured
        from bastion.db.migrations import migrate
        from bastion.db.users import create_user
        from bastion.security import HasherConfig, PasswordHasher

        hasher = PasswordHasher(
            HasherConfig(
                memory_kib=settings.argon2_memory_kib,
                time_cost=settings.argon2_time_cost,
                parallelism=settings.argon2_parallelism,
            )
        )
        db = open_configured(settings)
        try:
            await migrate(db)
            await create_user(
                db,
                user_id=str(uuid.uuid4()),
                email=body.email,
                name=body.name,
                password_hash=await hasher.hash(password),
                role="admin" if admin else "user",
                now=datetime.now(UTC),
            )
        except IntegrityConflict:
            console.print(f"[bold red]not created:[/] {body.email} is already registered.")
            raise typer.Exit(1) from None
        finally:
            hasher.close()
            await db.close()

    _run(go)
    console.print(f"created {'admin' if admin else 'user'} {body.email}.")


class ReportFormat(StrEnum):
    table = "table"
    json = "json"
    sarif = "sarif"
    junit = "junit"
    markdown = "markdown"


@app.command("audit")
def audit_cmd(
    url: Annotated[str, typer.Argument(help="Base URL of the API to audit.")],
    profile: Annotated[
        Path | None, typer.Option(help="TOML profile of the API (default: shared/API.md's).")
    ] = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Report format.")] = (
        ReportFormat.table
    ),
    output: Annotated[Path | None, typer.Option(help="Write the report to FILE.")] = None,
    only: Annotated[
        str | None, typer.Option(help="Run only these check ids (comma-separated).")
    ] = None,
    skip: Annotated[
        str | None, typer.Option(help="Skip these check ids (comma-separated).")
    ] = None,
    authorized: Annotated[
        bool, typer.Option("--authorized", help="Allow a target that is not loopback.")
    ] = False,
) -> None:
    """Attack an API the way the guide's defences expect (loopback only unless --authorized)."""
    from bastion.audit.command import audit_main

    raise typer.Exit(
        audit_main(
            url,
            profile_path=profile,
            fmt=fmt.value,
            output=output,
            only=only,
            skip=skip,
            authorized=authorized,
            console=console,
        )
    )


def main() -> None:
    app()

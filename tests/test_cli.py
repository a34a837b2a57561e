"""``bastion`` as an operator runs it: a subprocess with its own working directory and
environment (the database is the run's: SQLite under ./var, or PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bastion.db import open_database
from tests.conftest import Client, client_for

BASTION = str(Path(sys.executable).with_name("bastion"))
ADMIN_PASSWORD = "Quartz-Lantern-Orbit-93"


def run(cwd: Path, *args: str, db_url: str | None, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    base.update({"COLUMNS": "200", "NO_COLOR": "1", "BASTION_ARGON2_MEMORY_KIB": "1024"})
    if db_url:
        base["BASTION_DATABASE_URL"] = db_url
    base.update(env)
    return subprocess.run(
        [BASTION, *args], cwd=cwd, env=base, capture_output=True, text=True, timeout=60, check=False
    )


async def arun(
    cwd: Path, *args: str, db_url: str | None, **env: str
) -> subprocess.CompletedProcess[str]:
    """:func:`run` from an async test: in a thread, so the event loop (and the app the
    test started on it) keeps running while the CLI works."""
    return await asyncio.to_thread(run, cwd, *args, db_url=db_url, **env)


def said(result: subprocess.CompletedProcess[str]) -> str:
    return " ".join((result.stdout + result.stderr).split())


async def _catalogue(cwd: Path, db_url: str | None) -> tuple[int, set[str]]:
    db = open_database(db_url or f"sqlite:///{cwd / 'var' / 'bastion.sqlite3'}")
    try:
        products = await db.fetch("SELECT id FROM products")
        codes = await db.fetch("SELECT code FROM promo_codes")
    finally:
        await db.close()
    return len(products), {r["code"] for r in codes}


async def test_migrate_creates_the_schema_and_then_has_nothing_to_do(
    tmp_path: Path, pg_database: str | None, start_app: Any
) -> None:
    if pg_database:
        await start_app()  # a wiped PostgreSQL database for this run
    first = await arun(tmp_path, "migrate", db_url=pg_database)
    assert first.returncode == 0, said(first)
    again = await arun(tmp_path, "migrate", db_url=pg_database)
    assert again.returncode == 0, said(again)
    assert "0 migration(s) applied" in said(again)


async def test_seed_demo_is_idempotent(
    tmp_path: Path, pg_database: str | None, start_app: Any
) -> None:
    if pg_database:
        app = await start_app()
        await app.services.db.execute("DELETE FROM products")
        await app.services.db.execute("DELETE FROM promo_codes")
    counts = []
    for _ in range(2):
        result = await arun(tmp_path, "seed-demo", db_url=pg_database)
        assert result.returncode == 0, said(result)
        counts.append(await _catalogue(tmp_path, pg_database))
    assert counts[0] == counts[1]
    products, codes = counts[0]
    assert products >= 5
    assert {"WELCOME10", "EXPIRED-2020"} <= codes
    assert "0 product(s) and 0 promo code(s) added" in said(result)


async def test_users_create_makes_an_admin_who_can_use_the_admin_api(
    tmp_path: Path, pg_database: str | None, start_app: Any
) -> None:
    # The app shares the CLI's database and var/ (make_settings puts var/ in tmp_path).
    app = await start_app()
    result = await arun(
        tmp_path,
        "users", "create", "--email", " Root@Example.COM ", "--admin",
        db_url=pg_database,
        BASTION_NEW_PASSWORD=ADMIN_PASSWORD,
    )  # fmt: skip
    assert result.returncode == 0, said(result)
    assert ADMIN_PASSWORD not in said(result)
    client: Client
    async with client_for(app) as client:
        token = await client.login("root@example.com", ADMIN_PASSWORD)
        r = await client.get("/api/admin/users", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        (admin,) = [u for u in r.json()["items"] if u["email"] == "root@example.com"]
        assert admin["role"] == "admin"
    again = await arun(
        tmp_path, "users", "create", "--email", "root@example.com",
        db_url=pg_database, BASTION_NEW_PASSWORD=ADMIN_PASSWORD,
    )  # fmt: skip
    assert again.returncode != 0
    assert "already registered" in said(again)


@pytest.mark.parametrize("password", ["short", "password1234"])
def test_users_create_refuses_a_weak_password(tmp_path: Path, password: str) -> None:
    result = run(
        tmp_path, "users", "create", "--email", "weak@example.com",
        db_url=None, BASTION_NEW_PASSWORD=password,
    )  # fmt: skip
    assert result.returncode != 0
    assert "password refused" in said(result)
    assert password not in said(result)


@pytest.mark.parametrize(
    ("env", "needed"),
    [
        ({}, "--workers > 1 needs BASTION_REDIS_URL"),
        (
            {"BASTION_REDIS_URL": "redis://127.0.0.1:1/0"},
            "--workers > 1 needs BASTION_DATABASE_URL",
        ),
    ],
    ids=["no-redis", "redis-but-sqlite"],
)
def test_serve_with_two_workers_refuses_to_start_without_shared_state(
    tmp_path: Path, env: dict[str, str], needed: str
) -> None:
    result = run(tmp_path, "serve", "--workers", "2", "--port", "1", db_url=None, **env)
    assert result.returncode != 0
    assert needed in said(result)
    assert "Traceback" not in said(result)


def test_an_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    result = run(tmp_path, "migrate", db_url="postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode != 0
    assert "database unavailable" in said(result)
    assert "Traceback" not in said(result)


def test_a_bad_rate_limit_stops_migrate_naming_the_variable(tmp_path: Path) -> None:
    result = run(tmp_path, "migrate", db_url=None, BASTION_RATE_LIMIT_GLOBAL="abc")
    assert result.returncode != 0
    assert "BASTION_RATE_LIMIT_GLOBAL: 'abc' is not a rate" in said(result)
    assert "Traceback" not in said(result)
    assert not (tmp_path / "var" / "bastion.sqlite3").exists()


def test_users_create_names_a_bad_field_without_quoting_the_password(tmp_path: Path) -> None:
    secret = "Sup3r-Secret-Phrase-" * 60  # over the 1024-character input bound
    result = run(
        tmp_path, "users", "create", "--email", "not-an-email", "--name", "  ",
        db_url=None, BASTION_NEW_PASSWORD=secret,
    )  # fmt: skip
    assert result.returncode != 0
    assert "--email must be an email address" in said(result)
    assert "--name must not be empty" in said(result)
    assert "the password must be at most 1024 characters" in said(result)
    assert "Sup3r" not in said(result)


def test_serve_tunes_the_garbage_collector_in_its_worker(tmp_path: Path) -> None:
    """``bastion serve`` builds each worker's app with ``create_served_app``: the app's
    long-lived objects frozen out of collections, young collections far less often."""
    code = (
        "import gc; from bastion.app import GC_YOUNG_THRESHOLD, create_served_app; "
        "before = gc.get_threshold()[0]; create_served_app(); "
        "print(before, gc.get_threshold()[0] == GC_YOUNG_THRESHOLD, gc.get_freeze_count() > 1000)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["700", "True", "True"]


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    result = run(tmp_path, "--version", db_url=None)
    assert result.returncode == 0, said(result)
    assert result.stdout == f"bastion {version('bastion')}\n"


@pytest.mark.parametrize("address", ["127.0.0.1:{port}", "0.0.0.0:{port}", "localhost:{port}"])
def test_serve_refuses_metrics_on_the_api_address(tmp_path: Path, address: str) -> None:
    result = run(
        tmp_path,
        "serve",
        "--port",
        "18765",
        db_url=None,
        BASTION_METRICS_ADDRESS=address.format(port=18765),
    )
    assert result.returncode == 2, said(result)
    assert "must not be the API's own address" in said(result)


def test_a_bad_metrics_address_stops_serve_naming_the_variable(tmp_path: Path) -> None:
    result = run(tmp_path, "serve", db_url=None, BASTION_METRICS_ADDRESS="metrics.internal")
    assert result.returncode == 2
    assert "BASTION_METRICS_ADDRESS" in said(result)


def test_without_a_metrics_address_the_app_has_no_metrics_at_all(tmp_path: Path) -> None:
    # A process of its own: the test process may have imported prometheus-client already.
    code = (
        "import sys\n"
        "from bastion.app import create_app\n"
        "from bastion.config import load_settings\n"
        f"app = create_app(load_settings(var_dir={str(tmp_path)!r}))\n"
        "from bastion.api.shedding import MarkReturning\n"
        "assert app.services.metrics is None\n"
        "assert type(app._asgi) is MarkReturning, type(app._asgi)\n"
        "assert 'prometheus_client' not in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr

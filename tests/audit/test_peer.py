"""``bastion audit`` against an implementation of the contract it has never seen: the
peer ``fastapi-typical`` (shared/peers/, FastAPI + SQLAlchemy + slowapi), installed from
PyPI into a temporary folder and run as its README says, on PostgreSQL and Redis. The
verdicts are the ones docs/audit.md records for it: the same failures, found again on
every run, and no check left unjudged.

The shared folder is the repository's ``../shared`` (or ``BASTION_TEST_SHARED_DIR``). It is
read-only in CI, so the peer is copied before its dependencies are installed. Under
``CI=true`` a missing folder or a failed install fails the test; elsewhere (a checkout
without the shared folder, a machine offline) it is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from bastion.audit.registry import select
from tests.databases import scratch_postgres
from tests.servers import BASTION, free_port

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("BASTION_TEST_SHARED_DIR") or ROOT.parent / "shared")
PEER = "fastapi-typical"

# docs/audit.md, "The peers, audited": fastapi-typical's column.
EXPECTED_FAILURES = {
    "sessions.logout",  # stateless access tokens: still valid after logout
    "ratelimit.auth",  # slowapi counts successful logins against the failed-login budget
    "lockout.denial-of-service",  # the lockout is per email only: the victim is locked out too
    "resources.limits",  # only Content-Length is checked: a chunked body gets through
}
# The peer has no admin routes and no GraphQL endpoint.
EXPECTED_NOT_APPLICABLE = {"authz.function-level", "graphql.limits"}
# The peer's own keys (it has no key prefix setting); Bastion's are all ``bastion:{...}``,
# so the two never meet in one Redis db, and these are removed afterwards.
PEER_KEY_PATTERNS = ("refresh:*", "user_sessions:*", "lockout:*", "LIMITS:*", "LIMITER/*")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


def _uv() -> str:
    """The uv that ``make install`` used (on PATH, or the project's private one)."""
    found = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    if not Path(found).is_file():
        _unavailable("uv is not installed: run make install")
    return found


@pytest.fixture(scope="module")
def peer_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The peer's sources copied to a temporary folder, with its pinned requirements
    installed in a virtualenv there (uv: seconds from its cache)."""
    source = SHARED / "peers" / PEER
    if not (source / "requirements.txt").is_file():
        _unavailable(f"{source} is missing: set BASTION_TEST_SHARED_DIR to the shared folder")
    folder = tmp_path_factory.mktemp(PEER)
    shutil.copytree(source / "app", folder / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(source / "requirements.txt", folder)
    uv = _uv()
    venv = folder / ".venv"
    steps = [
        [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
         "-r", str(folder / "requirements.txt")],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=80, check=False)
        if done.returncode != 0:
            _unavailable(f"installing {PEER} failed: {done.stderr[-2000:]}")
    return folder


@pytest.fixture
def peer_url(peer_folder: Path, shared_postgres_url: str, shared_redis_url: str) -> Iterator[str]:
    """The peer served by uvicorn as its README says, on a scratch PostgreSQL database
    of the run's server and the run's Redis, seeded; yields its base URL."""
    with scratch_postgres(shared_postgres_url, "bastion_peer") as database_url:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DATABASE_URL": database_url.replace("postgresql://", "postgresql+asyncpg://", 1),
            "REDIS_URL": shared_redis_url,
            "ACCESS_SECRET": secrets.token_urlsafe(32),
            "REFRESH_SECRET": secrets.token_urlsafe(32),
        }
        python = str(peer_folder / ".venv" / "bin" / "python")
        seeded = subprocess.run(
            [python, "-m", "app.seed"],
            cwd=peer_folder, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert seeded.returncode == 0, seeded.stderr[-2000:]
        port = free_port()
        log = (peer_folder / "server.log").open("w")
        server = subprocess.Popen(
            [str(peer_folder / ".venv" / "bin" / "uvicorn"), "app.main:app",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=peer_folder, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                assert server.poll() is None, (peer_folder / "server.log").read_text()[-2000:]
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the peer did not answer /healthz in 30 s"
                time.sleep(0.1)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()
            _forget_peer_keys(shared_redis_url)


def _forget_peer_keys(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        for pattern in PEER_KEY_PATTERNS:
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


def test_the_audit_finds_the_documented_failures_of_a_peer_and_judges_every_check(
    peer_url: str,
) -> None:
    """With no profile, over real sockets: the four failures of the docs' table, the
    two checks the peer has nothing for, and every other check passed (none
    inconclusive: an audit that could not judge would pass for a finding)."""
    done = subprocess.run(
        [str(BASTION), "audit", peer_url, "--format", "json"],
        capture_output=True, text=True, timeout=100, check=False,
    )  # fmt: skip
    report = json.loads(done.stdout)
    verdicts = {c["id"]: c["verdict"] for c in report["checks"]}
    reasons = {c["id"]: (c["verdict"], c["reason"], c["evidence"]) for c in report["checks"]}
    assert set(verdicts) == {c.id for c in select(None, None)}
    assert {i for i, v in verdicts.items() if v == "inconclusive"} == set(), reasons
    assert {i for i, v in verdicts.items() if v == "fail"} == EXPECTED_FAILURES, reasons
    assert {i for i, v in verdicts.items() if v == "not-applicable"} == EXPECTED_NOT_APPLICABLE
    assert done.returncode == 1  # a failure found

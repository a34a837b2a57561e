"""SIGTERM under load: ``/readyz`` turns 503 while the worker keeps serving, every request
in flight gets its whole answer, then the process exits.

A real ``bastion serve`` (two workers on PostgreSQL + Redis, one on the embedded
default) gets a burst of logins whose hashes (128 MiB Argon2, one at a time per worker)
take several seconds to work through; SIGTERM arrives while they are in flight, and the
drain (1.5 s) ends before the last of them does, so uvicorn's own graceful stop has to
wait for the rest.
"""

from __future__ import annotations

import secrets
import signal
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import httpx

from tests.conftest import PG_URL, REDIS_URL
from tests.databases import scratch_postgres
from tests.servers import BastionServer, production_env

WORKERS = 2 if PG_URL and REDIS_URL else 1
DRAIN = 1.5
IN_FLIGHT = 16


Result = tuple[int, dict[str, object], float] | BaseException


def _login(url: str, results: list[Result], i: int) -> None:
    body = {"email": f"nobody-{secrets.token_hex(4)}@example.com", "password": "Wrong-But-Long-84"}
    try:
        with httpx.Client(timeout=60) as client:
            answer = client.post(f"{url}/api/auth/login", json=body)
            results[i] = (answer.status_code, answer.json(), time.monotonic())
    except BaseException as exc:  # a cut connection, a truncated body
        results[i] = exc


def test_sigterm_turns_readyz_503_and_lets_every_request_in_flight_finish(tmp_path: Path) -> None:
    scratch = scratch_postgres(PG_URL, "bastion_shutdown") if PG_URL else nullcontext(None)
    with scratch as database:
        env = {
            **production_env(),
            "BASTION_SHUTDOWN_DRAIN": str(DRAIN),
            "BASTION_SHUTDOWN_TIMEOUT": "30",
            "BASTION_ARGON2_MEMORY_KIB": "131072",
            "BASTION_ARGON2_TIME_COST": "2",
            "BASTION_HASH_CONCURRENCY": "1",
            "BASTION_HASH_QUEUE": str(IN_FLIGHT),
            # The logins queue for one hasher slot: the last of them can wait longer
            # than the hasher's default bound (5 s) and would get its 503 from the
            # hasher, not from the shutdown under test.
            "BASTION_HASH_MAX_WAIT": "60",
            "BASTION_RATE_LIMIT_GLOBAL": "100000/hour",
            "BASTION_RATE_LIMIT_AUTH": "100000/hour",
            "BASTION_LOCKOUT": "100000/hour",
        }
        if database:
            env["BASTION_DATABASE_URL"] = database
        if REDIS_URL:
            env["BASTION_REDIS_URL"] = REDIS_URL
        server = BastionServer(tmp_path / "server", env, args=["--workers", str(WORKERS)])
        server.start()
        try:
            _check_drain(server)
        finally:
            server.kill()


def _check_drain(server: BastionServer) -> None:
    process = server.process
    assert process is not None
    results: list[Result] = [RuntimeError("no answer")] * IN_FLIGHT
    threads = [
        threading.Thread(target=_login, args=(server.url, results, i)) for i in range(IN_FLIGHT)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # every login sent, the first hashes running, the rest in line
    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()

    ready: list[tuple[float, int]] = []  # (seconds after the signal, /readyz status)
    while time.monotonic() - signalled < DRAIN + 5:
        try:
            answer = httpx.get(f"{server.url}/readyz", timeout=2)
        except httpx.TransportError:
            break  # the listener is closed: the drain is over
        ready.append((time.monotonic() - signalled, answer.status_code))
        time.sleep(0.05)

    for thread in threads:
        thread.join(60)
    exited = process.wait(30)

    statuses = [status for _, status in ready]
    assert 503 in statuses, ready
    first_503 = statuses.index(503)
    # At once (the supervisor of several workers passes the signal on within 0.5 s),
    # and never ready again.
    assert ready[first_503][0] < 1.0, ready
    assert set(statuses[first_503:]) == {503}, ready
    # Still answering while draining: /readyz itself is served for about the drain.
    assert ready[-1][0] > DRAIN - 0.5, ready
    # Every login in flight got its whole answer: the problem details of a wrong login.
    finished = []
    for result in results:
        assert not isinstance(result, BaseException), results
        status, body, at = result
        assert status == 401, result
        assert body["status"] == 401, result
        assert body["detail"], result
        finished.append(at - signalled)
    # Some were still in flight when the drain ended and the listener closed: uvicorn
    # waited for them before it stopped.
    assert max(finished) > DRAIN + 0.2, finished
    assert exited in (0, 128 + signal.SIGTERM, -signal.SIGTERM), exited

"""A real ``bastion serve`` process for tests that need one (a browser, or everything the
process prints): development mode, SQLite and the in-process store in a temporary
working directory, cheap Argon2, its stdout and stderr captured to a file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

BASTION = Path(sys.executable).parent / "bastion"
FAST_ENV = {
    "BASTION_ARGON2_MEMORY_KIB": "1024",
    "BASTION_ARGON2_TIME_COST": "1",
    "BASTION_SHUTDOWN_DRAIN": "0",  # stop at once on SIGTERM
    "BASTION_RATE_LIMIT_GLOBAL": "100000/hour",
    "BASTION_RATE_LIMIT_AUTH": "100000/hour",
    "BASTION_LOCKOUT": "100000/hour",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LiveServer:
    url: str
    cwd: Path
    log: Path

    @property
    def database(self) -> Path:
        return self.cwd / "var" / "bastion.sqlite3"

    def printed(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.log.read_bytes().decode("utf-8", "replace")


@contextmanager
def live_server(cwd: Path, env: Mapping[str, str] | None = None) -> Iterator[LiveServer]:
    """Start ``bastion serve`` in ``cwd``, wait until ``/healthz`` answers, stop it after."""
    cwd.mkdir(parents=True, exist_ok=True)
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    environ.update({**FAST_ENV, **(env or {}), "PYTHONUNBUFFERED": "1"})
    log = cwd / "server.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BASTION), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_until_ready(process, url, log)
            yield LiveServer(url=url, cwd=cwd, log=log)
        finally:
            _stop(process)


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"bastion serve exited with {process.returncode}:\n{log.read_text()}"
            )
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"bastion serve did not answer within 60 s:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)

"""Real processes for the tests that need them: ``bastion serve`` in a working directory
of its own (started, stopped, killed with SIGKILL, started again on the same port),
private PostgreSQL clusters that a test may stop, freeze and start (never the shared
server), and private Redis servers that a test may stop, freeze and restart.

Everything here fails loudly when a binary is missing: the tests that need one never
skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

import httpx

BASTION = Path(sys.executable).with_name("bastion")
# Cheap Argon2, as everywhere in the tests; limits are the caller's to set.
FAST_HASH_ENV = {"BASTION_ARGON2_MEMORY_KIB": "1024", "BASTION_ARGON2_TIME_COST": "1"}
# Stopping (SIGTERM) without the production drain, unless a test asks for one.
FAST_STOP_ENV = {"BASTION_SHUTDOWN_DRAIN": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A private ``redis-server`` on a free port, without persistence."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; these tests need it")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _pong(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Kill it outright (SIGKILL): connections drop as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections, but nothing ever answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


def production_env() -> dict[str, str]:
    """``BASTION_ENV=production`` with fresh strong secrets (no docs, no demo data)."""
    return {
        "BASTION_ENV": "production",
        "BASTION_ACCESS_SECRET": secrets.token_urlsafe(48),
        "BASTION_REFRESH_SECRET": secrets.token_urlsafe(48),
    }


class BastionServer:
    """``bastion serve`` on 127.0.0.1, run from ``cwd`` (where SQLite's ``var/`` lives).

    The environment is the test process's without any ``BASTION_*`` variable, plus
    cheap Argon2 and no shutdown drain, plus ``env``. ``args`` go to ``serve`` too
    (``--workers``). The port is chosen once: :meth:`start` after :meth:`stop` or
    :meth:`kill` serves on the same one. Output goes to ``cwd/name.log``.
    """

    def __init__(
        self,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        *,
        name: str = "server",
        args: Sequence[str] = (),
    ) -> None:
        self.cwd = cwd
        self.args = tuple(args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"{name}.log"
        self.environ = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
        self.environ.update(
            {**FAST_HASH_ENV, **FAST_STOP_ENV, **(env or {}), "PYTHONUNBUFFERED": "1"}
        )
        self.process: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run another ``bastion`` command (``seed-demo``, ``migrate``...) with the same
        environment and working directory; raises if it fails."""
        self.cwd.mkdir(parents=True, exist_ok=True)
        return subprocess.run(
            [str(BASTION), *args],
            cwd=self.cwd,
            env=self.environ,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )

    def start(self, *, timeout: float = 60) -> BastionServer:
        """Start it and wait until ``/healthz`` answers 200."""
        if self.running:
            raise RuntimeError("already running")
        self.cwd.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    str(BASTION),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    *self.args,
                ],
                cwd=self.cwd,
                env=self.environ,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"bastion serve exited with {self.process.returncode}:\n" + self.printed()
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"bastion serve did not answer in {timeout} s:\n{self.printed()}"
                )
            time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, *, timeout: float = 15) -> None:
        """SIGTERM, as an orderly shutdown; SIGKILL if it does not exit in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def kill(self) -> None:
        """SIGKILL (``kill -9``): no shutdown code runs, as in a crash."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def printed(self) -> str:
        """Everything the process (all its runs) wrote to stdout and stderr so far."""
        return self.log.read_bytes().decode("utf-8", "replace") if self.log.exists() else ""

    def __enter__(self) -> BastionServer:
        return self.start() if not self.running else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed; these tests need it")
    return found


class PostgresCluster:
    """A private PostgreSQL cluster on a free port, trust authentication on 127.0.0.1,
    no fsync (it is thrown away). As root, PostgreSQL runs as the ``postgres`` user."""

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        self.port = free_port()
        # Not under pytest's tmp_path: its parents are closed to other users.
        self.root = Path(tempfile.mkdtemp(prefix="bastion-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as_postgres = os.geteuid() == 0
        self._frozen = False
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(self.initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        result = subprocess.run(
            [*prefix, *command], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}{log}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start"
        )

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: sessions are ended, the server shuts down cleanly."""
        self._run(self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def _processes(self) -> list[int]:
        """The postmaster, then every process it started (backends, checkpointer...)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue  # gone meanwhile
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
        return [postmaster, *children]

    def _signal(self, signum: signal.Signals) -> None:
        postmaster, *children = self._processes()
        os.kill(postmaster, signum)
        for pid in children:
            # A backend that exited while the postmaster was stopped is reaped as soon
            # as it runs again: gone between the listing and its signal.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def freeze(self) -> None:
        """SIGSTOP to the whole cluster: connections are accepted by the kernel, open
        ones stay open, and nothing ever answers (a hung host, a black-holed network).
        The postmaster first, so that it starts nothing new meanwhile."""
        self._signal(signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)
        self._frozen = False

    def destroy(self) -> None:
        if self._frozen:
            self.thaw()
        if self.running:
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class PgBouncer:
    """A private PgBouncer on a free port, in transaction pooling mode, in front of the
    PostgreSQL server at ``upstream`` (``host:port``): every database name is passed
    through (``*``), every user is trusted, and each database/user pair gets at most
    ``server_pool`` server connections, fewer than a Bastion pool holds, so that one
    client connection's transactions really do land on different server connections.

    New server connections run ``connect_query``: the session settings that Bastion
    cannot send through PgBouncer (docs/deployment.md). PgBouncer refuses to run as
    root; as root it runs as the ``postgres`` user.
    """

    CONNECT_QUERY = "SET statement_timeout = 10000; SET idle_in_transaction_session_timeout = 30000"

    def __init__(self, upstream: str, *, server_pool: int = 3) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not os.access(binary, os.X_OK):
            raise RuntimeError("pgbouncer is not installed; these tests need it")
        self.binary = binary
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="bastion-pgbouncer-"))
        self.log = self.root / "pgbouncer.log"
        host, _, port = upstream.rpartition(":")
        (self.root / "users.txt").write_text('"root" ""\n"postgres" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={host} port={port} connect_query='{self.CONNECT_QUERY}'\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.root / 'users.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {server_pool}\n"
            "max_client_conn = 500\n"
            f"logfile = {self.log}\n"
        )
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            for path in (self.root, *self.root.iterdir()):
                shutil.chown(path, "postgres", "postgres")
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, upstream_url: str) -> str:
        """``upstream_url`` (a PostgreSQL URL on the upstream server), through PgBouncer."""
        parts = urlsplit(upstream_url)
        user = f"{parts.username}@" if parts.username else ""
        return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{self.port}"))

    def start(self) -> None:
        user = ["-u", "postgres"] if self._as_postgres else []
        self.process = subprocess.Popen(
            [self.binary, *user, str(self.root / "pgbouncer.ini")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _accepts(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.log.read_text() if self.log.exists() else ""
                self.stop()
                raise RuntimeError(f"pgbouncer did not start on port {self.port}:\n{log}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

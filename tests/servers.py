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


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (``port + 10000``) is free too."""
    for _ in range(200):
        port = 20000 + secrets.randbelow(20000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class RedisServer:
    """A private ``redis-server`` on a free port, without persistence."""

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; these tests need it")
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.frozen = False

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, *options: str) -> None:
        """Start it (``options`` are more ``redis-server`` arguments) and wait for PONG."""
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
                "--logfile",
                str(self.workdir / "redis.log"),
                *options,
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
        self.frozen = False

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections, but nothing ever answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.frozen = False


class RedisClusterServers:
    """A private Redis Cluster: three masters and three replicas (``redis-server
    --cluster-enabled yes`` on free ports, joined by ``redis-cli --cluster create``),
    without persistence. A short ``cluster-node-timeout`` makes a failover take seconds.
    """

    def __init__(self, workdir: Path, *, node_timeout_ms: int = 1000) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed; these tests need it")
        self.cli = cli
        self.workdir = workdir
        self.node_timeout_ms = node_timeout_ms
        self.nodes = [
            RedisServer(workdir / f"node-{i}", port=free_cluster_port()) for i in range(6)
        ]

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def url(self) -> str:
        """The ``redis+cluster://`` URL naming every node (any one would do)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def __enter__(self) -> RedisClusterServers:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        for node in self.nodes:
            node.start(
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(node.workdir / "nodes.conf"),
                "--cluster-node-timeout",
                str(self.node_timeout_ms),
                "--repl-diskless-sync-delay",
                "0",
            )
        result = subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            self.stop()
            raise RuntimeError(
                f"redis-cli --cluster create failed:\n{result.stdout}{result.stderr}"
            )
        self.wait_ok()

    def command(self, port: int, *args: str, timeout: float = 5) -> str:
        """One ``redis-cli`` command on the node at ``port``; its output."""
        result = subprocess.run(
            [self.cli, "-h", "127.0.0.1", "-p", str(port), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return result.stdout

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every running node says ``cluster_state:ok``, sees as many replicas as
        there are running replicas, and every running replica has finished its first
        sync with its master (so that a failover loses nothing)."""
        deadline = time.monotonic() + timeout
        while True:
            live = [n.port for n in self.nodes if n.process is not None and not n.frozen]
            states = [self.command(p, "info", "replication") for p in live]
            synced = all(
                "role:master" in s
                or ("master_link_status:up" in s and "master_sync_in_progress:0" in s)
                for s in states
            )
            replicas = sum("role:slave" in s for s in states)
            if synced and all(
                "cluster_state:ok" in self.command(p, "cluster", "info")
                and self.command(p, "cluster", "nodes").count("slave") >= replicas
                for p in live
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster never reached cluster_state:ok")
            time.sleep(0.05)

    def masters(self, *, via: int | None = None) -> dict[int, tuple[int, int]]:
        """``{port: (first slot, last slot)}`` of every master with slots, as the node at
        ``via`` (by default the first running one) sees the cluster."""
        port = via or next(n.port for n in self.nodes if n.process is not None and not n.frozen)
        out: dict[int, tuple[int, int]] = {}
        for line in self.command(port, "cluster", "nodes").splitlines():
            fields = line.split()
            if len(fields) > 8 and "master" in fields[2] and "fail" not in fields[2]:
                first, _, last = fields[8].partition("-")
                out[int(fields[1].split(":")[1].split("@")[0])] = (int(first), int(last or first))
        return out

    def node(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


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

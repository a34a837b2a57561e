"""``bastion check`` as a deploy gate: exit 0 only when the configuration is valid and
the database, the store (every node of a cluster) and the schema are ready; exit 1,
saying what is wrong, otherwise. Never a traceback, never a secret."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import RedisClusterServers, RedisServer, free_port

BASTION = str(Path(sys.executable).with_name("bastion"))
SECRET = "access-secret-that-must-never-be-printed-0123456789"
PASSWORD = "redis-password-never-printed"


def check(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    base.update({"BASTION_ACCESS_SECRET": SECRET, "NO_COLOR": "1", **env})
    result = subprocess.run(
        [BASTION, "check", "--wait", "1"],
        cwd=cwd,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    printed = result.stdout + result.stderr
    assert "Traceback" not in printed
    assert SECRET not in printed
    assert PASSWORD not in printed
    return result


def migrate(cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    subprocess.run([BASTION, "migrate"], cwd=cwd, env=env, check=True, capture_output=True)


def rows(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """``{name: "ok ..." or "FAIL ..."}`` from the readiness lines."""
    out = {}
    for line in result.stdout.split("readiness", 1)[1].splitlines():
        mark, _, rest = line.strip().partition(" ")
        if mark in ("ok", "FAIL"):
            name, _, detail = rest.strip().partition(": ")
            out[name] = f"{mark} {detail}"
    return out


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start("--requirepass", PASSWORD)
    try:
        yield server
    finally:
        server.stop()


def test_everything_ready_exits_0_and_prints_the_configuration_masked(
    tmp_path: Path, redis_with_password: RedisServer
) -> None:
    migrate(tmp_path)
    url = f"redis://:{PASSWORD}@127.0.0.1:{redis_with_password.port}/0"
    result = check(tmp_path, BASTION_REDIS_URL=url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BASTION_ACCESS_SECRET = ***" in result.stdout
    assert f"BASTION_REDIS_URL = redis://:***@127.0.0.1:{redis_with_password.port}/0" in (
        result.stdout
    )
    assert rows(result) == {
        "database": "ok SQLite (var/bastion.sqlite3): answers",
        "migrations": "ok schema up to date",
        "store": f"ok Redis redis://:***@127.0.0.1:{redis_with_password.port}/0: answers",
    }
    assert result.stdout.rstrip().endswith("ready")


def test_pending_migrations_exit_1(tmp_path: Path) -> None:
    result = check(tmp_path)
    assert result.returncode == 1
    assert rows(result)["migrations"].startswith("FAIL ")
    assert "bastion migrate" in rows(result)["migrations"]
    assert result.stdout.rstrip().endswith("not ready")


def test_a_database_that_does_not_answer_exits_1(tmp_path: Path) -> None:
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:{free_port()}/app"
    result = check(tmp_path, BASTION_DATABASE_URL=url)
    assert result.returncode == 1
    assert rows(result)["database"].startswith("FAIL PostgreSQL")
    assert "BASTION_DATABASE_URL = postgresql://app:***@127.0.0.1:" in result.stdout


def test_a_store_that_does_not_answer_exits_1(tmp_path: Path) -> None:
    migrate(tmp_path)
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    result = check(tmp_path, BASTION_REDIS_URL=url)
    assert result.returncode == 1
    assert rows(result)["store"].startswith("FAIL Redis redis://:***@")
    assert rows(result)["database"].startswith("ok ")


def test_a_bad_configuration_exits_1_with_the_variable_named(tmp_path: Path) -> None:
    result = check(tmp_path, BASTION_RATE_LIMIT_AUTH="lots", BASTION_REDIS_URL="http://x")
    assert result.returncode == 1
    assert "configuration error" in result.stderr
    assert "BASTION_RATE_LIMIT_AUTH" in result.stderr
    assert "BASTION_REDIS_URL" in result.stderr
    assert "readiness" not in result.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    # A long node timeout: the frozen replica below is never declared failed.
    with RedisClusterServers(tmp_path_factory.mktemp("cluster"), node_timeout_ms=15000) as servers:
        yield servers


def test_a_cluster_is_ready_when_every_node_answers(
    tmp_path: Path, cluster: RedisClusterServers
) -> None:
    migrate(tmp_path)
    result = check(tmp_path, BASTION_REDIS_URL=cluster.url())
    assert result.returncode == 0, result.stdout
    nodes = {k: v for k, v in rows(result).items() if k.startswith("node ")}
    assert sorted(nodes) == sorted(f"node 127.0.0.1:{p}" for p in cluster.ports)
    assert sorted(nodes.values()) == ["ok master, answers"] * 3 + ["ok replica, answers"] * 3


def test_one_cluster_node_down_exits_1_naming_it(
    tmp_path: Path, cluster: RedisClusterServers
) -> None:
    migrate(tmp_path)
    masters = cluster.masters()
    replica = next(n for n in cluster.nodes if n.port not in masters)
    replica.freeze()
    try:
        result = check(tmp_path, BASTION_REDIS_URL=cluster.url())
    finally:
        replica.thaw()
    assert result.returncode == 1
    found = rows(result)
    # The cluster still serves every slot, but a node is down: not ready to deploy.
    assert found["store"].startswith("ok Redis Cluster")
    assert found[f"node 127.0.0.1:{replica.port}"] == "FAIL replica, TimeoutError"
    assert sum(v.startswith("ok ") for k, v in found.items() if k.startswith("node ")) == 5

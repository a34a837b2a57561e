"""The metrics of a real ``bastion serve``, scraped the way Prometheus does, during traffic.

Two workers on PostgreSQL + Redis (one worker on the embedded default, where several
are refused), every request on a connection of its own so that both workers serve:
the counts on the metrics address are the sums over the workers, equal to what was
sent. Each test sends from client addresses and accounts of its own and compares
scrapes taken before and after, so that the tests share one server.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bastion.app import create_app
from bastion.config import load_settings
from tests.databases import scratch_postgres
from tests.servers import BastionServer, free_port, production_env

WORKERS = 2
GLOBAL, AUTH, LOCKOUT = 20, 3, 2
WRONG = "Not-The-Password-At-All-93"
T = TypeVar("T")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Served:
    server: BastionServer
    metrics_url: str

    def scrape_text(self) -> str:
        answer = httpx.get(self.metrics_url, timeout=5)
        assert answer.status_code == 200
        return answer.text

    def scrape(self) -> Samples:
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(self.scrape_text())
            for s in family.samples
        }

    def send(self, method: str, path: str, *, ip: str, **kwargs: object) -> httpx.Response:
        """One request on a new connection, from client ``ip`` (through the trusted
        loopback proxy's ``X-Forwarded-For``)."""
        headers = {"x-forwarded-for": ip, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        with httpx.Client(base_url=self.server.url, timeout=10) as client:
            return client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def eventually(probe: Callable[[], T], done: Callable[[T], bool], *, within: float = 10) -> T:
    """``probe()`` until ``done`` holds of its result (the response reaches the client
    just before the worker counts it), at most ``within`` seconds; the last result."""
    deadline = time.monotonic() + within
    while True:
        result = probe()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def client_ip() -> str:
    return f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, shared_postgres_url: str, shared_redis_url: str
) -> Iterator[Served]:
    # Two workers need PostgreSQL and Redis: the run's, else private ones (every pass).
    with scratch_postgres(shared_postgres_url, "bastion_metrics") as database:
        port = free_port()
        env = {
            **production_env(),
            "BASTION_METRICS_ADDRESS": f"127.0.0.1:{port}",
            "BASTION_TRUSTED_PROXIES": "127.0.0.1/32",
            "BASTION_RATE_LIMIT_GLOBAL": f"{GLOBAL}/hour",
            "BASTION_RATE_LIMIT_AUTH": f"{AUTH}/hour",
            "BASTION_LOCKOUT": f"{LOCKOUT}/15minutes",
            "BASTION_HASH_CONCURRENCY": "1",
        }
        env["BASTION_DATABASE_URL"] = database
        env["BASTION_REDIS_URL"] = shared_redis_url
        cwd = tmp_path_factory.mktemp("metrics")
        server = BastionServer(cwd, env, args=["--workers", str(WORKERS)])
        server.cli("seed-demo")
        with server:
            served = Served(server, f"http://127.0.0.1:{port}/metrics")
            # Every worker has started and sampled its gauges: 2 hash slots each.
            slots = eventually(
                lambda: value(served.scrape(), "bastion_hasher_slots"),
                lambda n: n == 2 * WORKERS,
                within=60,
            )
            assert slots == 2 * WORKERS, server.printed()[-3000:]
            yield served


def test_the_scrape_counts_the_requests_refusals_and_lockouts_that_were_sent(
    served: Served,
) -> None:
    before = served.scrape()
    tag = secrets.token_hex(4)
    reader, guesser = client_ip(), client_ip()
    for _ in range(GLOBAL + 5):  # over the global limit by 5
        served.send("GET", "/api/products", ip=reader)
    for i in range(AUTH + 2):  # wrong logins, each a new account: over the auth limit by 2
        body = {"email": f"nobody-{tag}-{i}@example.com", "password": WRONG}
        served.send("POST", "/api/auth/login", ip=guesser, json=body)
    victim = f"victim-{tag}@example.com"
    for _ in range(LOCKOUT + 2):  # one account from many clients: over its lockout by 2
        served.send(
            "POST", "/api/auth/login", ip=client_ip(), json={"email": victim, "password": WRONG}
        )

    def delta(samples: Samples, name: str, **labels: str) -> float:
        return value(samples, name, **labels) - value(before, name, **labels)

    count = "bastion_http_requests_total"
    login = {"method": "POST", "route": "/api/auth/login"}
    after = eventually(
        served.scrape,
        lambda s: delta(s, "bastion_http_request_duration_seconds_count", **login) == 9,
    )
    products = {"method": "GET", "route": "/api/products"}
    assert delta(after, count, **products, status="200") == GLOBAL
    assert delta(after, count, **products, status="429") == 5
    assert delta(after, count, **login, status="401") == AUTH + LOCKOUT
    assert delta(after, count, **login, status="429") == 2 + 2
    assert delta(after, "bastion_http_request_duration_seconds_count", **products) == GLOBAL + 5
    assert delta(after, "bastion_limit_refusals_total", limit="global") == 5
    assert delta(after, "bastion_limit_refusals_total", limit="auth") == 2
    assert delta(after, "bastion_limit_refusals_total", limit="lockout") == 2
    assert delta(after, "bastion_lockouts_started_total") == 1


def _labels(text: str) -> list[tuple[str, str, str]]:
    return [
        (s.name, k, v)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        for k, v in s.labels.items()
    ]


def test_no_label_carries_a_client_address_an_email_or_a_raw_path(
    served: Served, tmp_path: Path
) -> None:
    def traffic(tag: str, first_ip: int) -> list[str]:
        sent = [tag]
        for i in range(12):
            ip = f"203.0.113.{first_ip + i}"  # a client of its own: no limit is reached
            chain = f"192.0.2.{i + 1}, {ip}"
            sent += [ip, f"192.0.2.{i + 1}"]
            served.send("GET", f"/api/orders/{tag}{i}", ip=chain)
            served.send("GET", f"/{tag}/{i}", ip=ip, headers={"host": f"{tag}.example"})
            served.send("GET", f"/api/{tag}{i}?q={tag}", ip=ip)
            served.send("GET", f"/static/{tag}{i}.js", ip=ip)
            served.send("PURGE", f"/api/products/{tag}{i}", ip=ip)
            served.send("GET", f"/api/products?cursor={tag}{i}", ip=ip)
            email = f"{tag}{i}@leak.example"
            sent.append(email)
            served.send("POST", "/api/auth/login", ip=ip, json={"email": email, "password": WRONG})
        return sent

    first = traffic(secrets.token_hex(6), 1)
    time.sleep(0.5)  # the last requests counted
    series = len(_labels(served.scrape_text()))
    second = traffic(secrets.token_hex(6), 101)
    time.sleep(0.5)  # the last requests counted
    text = served.scrape_text()
    for sent in first + second:
        assert sent not in text
    # Route labels are templates of the API's routes (or /static), or one fixed value.
    api = create_app(load_settings(var_dir=tmp_path, env="development")).fastapi
    templates = set(api.openapi()["paths"]) | {"/static", "unmatched"}
    routes = {v for _, k, v in _labels(text) if k == "route"}
    assert routes <= templates, routes - templates
    assert {v for _, k, v in _labels(text) if k == "method"} <= {"GET", "POST", "OTHER", "HEAD"}
    # Different values of the same shapes make no new series: the count is bounded.
    assert len(_labels(text)) == series


def test_metrics_are_not_served_on_the_public_port(served: Served) -> None:
    for path in ("/metrics", "/metrics/", "/api/metrics"):
        answer = served.send("GET", path, ip=client_ip())
        assert answer.status_code == 404
        assert "bastion_http_requests" not in answer.text
    assert "bastion_http_requests_total" in served.scrape_text()


def _workers(parent: int) -> set[int]:
    """The worker processes of ``bastion serve`` (multiprocessing's spawned children)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"spawn_main" in cmdline:
            found.add(int(stat.parent.name))
    return found


def _multiproc_dir(pid: int) -> Path:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    entry = next(e for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR="))
    return Path(entry.partition(b"=")[2].decode())


def test_a_dead_workers_gauges_leave_the_scrape_and_its_counts_stay(served: Served) -> None:
    process = served.server.process
    assert process is not None
    workers = _workers(process.pid)
    assert len(workers) == WORKERS
    victim = min(workers)
    directory = _multiproc_dir(victim)
    before = served.scrape()
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        now = _workers(process.pid)
        served.scrape()  # a scrape drops the live gauges of dead processes
        return (
            victim not in now
            and len(now) == WORKERS
            and all((directory / f"gauge_livesum_{pid}.db").exists() for pid in now)
            and not (directory / f"gauge_livesum_{victim}.db").exists()
        )

    assert eventually(lambda: replaced(), bool, within=90)
    after = eventually(
        served.scrape, lambda s: value(s, "bastion_hasher_slots") == 2 * WORKERS, within=10
    )
    # The replacement's slots and the survivor's; none of the dead worker's.
    assert value(after, "bastion_hasher_slots") == 2 * WORKERS
    # What the dead worker counted is still counted.
    for (name, labels), counted in before.items():
        if name.endswith("_total") or name.endswith("_count"):
            assert after.get((name, labels), 0.0) >= counted, (name, dict(labels))

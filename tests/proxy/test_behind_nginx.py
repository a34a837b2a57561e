"""The deployment page's topology: two ``bastion serve`` instances behind Debian's nginx
running its configuration (docs/nginx.conf), on Redis and on PostgreSQL through
PgBouncer in transaction mode, with ``BASTION_TRUSTED_PROXIES`` naming nginx's
address: every limit is exact across both instances, a session ended through one is
refused by the other, a client cannot choose its own address with forwarding headers,
and the security headers (a fresh CSP nonce each time) arrive as Bastion sent them.

Clients connect to nginx from addresses of their own (127.0.0.10, 127.0.0.11, ...),
nginx to the instances from 127.0.0.1. nginx's round robin sends consecutive requests
to alternate instances; ``X-Test-Upstream`` (added by the test, around the docs' file)
says which one answered, so that each test can check that both took part.

Needs PostgreSQL and Redis: the run's own when they are configured, else private
servers started for the run (``shared_postgres_url``, ``shared_redis_url``), so it runs
in every pass. nginx, openssl and the services missing are failures, never skips.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest

from bastion.security.headers import DEFAULT_HEADERS
from tests.auth.conftest import REFRESH_COOKIE
from tests.conftest import PASSWORD
from tests.databases import scratch_postgres
from tests.proxy.nginx import HOST, Nginx
from tests.servers import BastionServer, PgBouncer, production_env

GLOBAL, AUTH, LOCKOUT = 20, 6, 3
LIMITS = {
    "BASTION_RATE_LIMIT_GLOBAL": f"{GLOBAL}/hour",
    "BASTION_RATE_LIMIT_AUTH": f"{AUTH}/hour",
    "BASTION_LOCKOUT": f"{LOCKOUT}/15minutes",
}
WRONG = "Not-The-Password-12345"
_addresses = (f"127.0.0.{n}" for n in itertools.count(10))


@dataclass
class Proxied:
    nginx: Nginx
    instances: dict[str, BastionServer]  # by the address nginx reaches it at

    def printed(self) -> str:
        return "".join(s.printed() for s in self.instances.values())


@pytest.fixture(scope="module")
def proxied(
    tmp_path_factory: pytest.TempPathFactory, shared_postgres_url: str, shared_redis_url: str
) -> Iterator[Proxied]:
    import redis

    with redis.Redis.from_url(shared_redis_url, socket_connect_timeout=5) as r:
        r.flushdb()  # limits of an earlier run: this run's counts must start at zero
    tmp = tmp_path_factory.mktemp("behind-nginx")
    upstream = urlsplit(shared_postgres_url)
    with scratch_postgres(shared_postgres_url, "bastion_nginx") as database:
        bouncer = PgBouncer(f"{upstream.hostname or '127.0.0.1'}:{upstream.port or 5432}")
        env = {
            **production_env(),
            **LIMITS,
            "BASTION_DATABASE_URL": bouncer.url(database),
            "BASTION_DATABASE_PGBOUNCER": "true",
            "BASTION_REDIS_URL": shared_redis_url,
            "BASTION_TRUSTED_PROXIES": "127.0.0.1/32",
            "BASTION_ALLOWED_HOSTS": HOST,
            "BASTION_PUBLIC_ORIGIN": f"https://{HOST}",
        }
        servers = [BastionServer(tmp / name, env, name=name) for name in ("a", "b")]
        nginx = Nginx([f"127.0.0.1:{s.port}" for s in servers])
        try:
            bouncer.start()
            for server in servers:
                server.start()
            nginx.start()
            yield Proxied(nginx, {f"127.0.0.1:{s.port}": s for s in servers})
        finally:
            nginx.destroy()
            for server in servers:
                server.stop()
            bouncer.destroy()


class Peer(httpx.AsyncClient):
    """A client of nginx from ``address``."""

    address: str


Connect = Callable[[], Peer]


@pytest.fixture
async def connect(proxied: Proxied) -> AsyncIterator[Connect]:
    """``connect()``: a client of nginx from a loopback address no other client has."""
    opened: list[Peer] = []

    def make() -> Peer:
        address = next(_addresses)
        client = Peer(
            transport=httpx.AsyncHTTPTransport(local_address=address, verify=proxied.nginx.tls()),
            base_url=proxied.nginx.https_url,
            headers={"Host": HOST},
            timeout=15,
        )
        client.address = address
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.aclose()


def upstreams(*responses: httpx.Response) -> set[str]:
    return {r.headers["x-test-upstream"] for r in responses}


def remaining(r: httpx.Response) -> int:
    match = re.fullmatch(r'"global";r=(\d+);t=\d+', r.headers["ratelimit"])
    assert match, r.headers["ratelimit"]
    return int(match.group(1))


async def register(client: httpx.AsyncClient) -> str:
    email = f"user-{os.urandom(5).hex()}@example.com"
    r = await client.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "Proxied"}
    )
    assert r.status_code == 201, r.text
    return email


def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> Awaitable[httpx.Response]:
    return client.post("/api/auth/login", json={"email": email, "password": password})


def assert_limited(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert int(r.headers["retry-after"]) >= 1


async def test_the_global_limit_is_exact_across_both_instances(
    proxied: Proxied, connect: Connect
) -> None:
    client = connect()
    burst = await asyncio.gather(*(client.get("/api/products") for _ in range(GLOBAL + 10)))
    statuses = Counter(r.status_code for r in burst)
    assert statuses == {200: GLOBAL, 429: 10}
    served = [r for r in burst if r.status_code == 200]
    # One count per request, shared: each admitted request saw a different remainder.
    assert sorted(remaining(r) for r in served) == list(range(GLOBAL))
    for r in burst:
        if r.status_code == 429:
            assert_limited(r)
    assert upstreams(*served) == set(proxied.instances)


async def test_forwarding_headers_from_a_client_cannot_change_its_address(
    proxied: Proxied, connect: Connect
) -> None:
    spender, other = connect(), connect()
    spent = await asyncio.gather(*(spender.get("/api/products") for _ in range(GLOBAL)))
    assert [r.status_code for r in spent] == [200] * GLOBAL
    disguises = [
        {"X-Forwarded-For": "203.0.113.9"},
        {"X-Forwarded-For": "203.0.113.9, 198.51.100.7"},
        {"X-Forwarded-For": "127.0.0.1"},  # "I am the proxy"
        {"Forwarded": "for=203.0.113.9"},
        {"X-Real-IP": "203.0.113.9"},
        {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Host": "evil.example"},
    ]
    for headers in disguises:
        assert_limited(await spender.get("/api/products", headers=headers))
    # Nor can another client borrow the spent address to be refused in its place:
    # it is counted as itself, from its first request.
    borrowed = await other.get("/api/products", headers={"X-Forwarded-For": spender.address})
    assert borrowed.status_code == 200
    assert remaining(borrowed) == GLOBAL - 1

    # The instances saw the real address, and never the claimed ones.
    deadline = time.monotonic() + 5
    while True:
        events = [
            json.loads(line) for line in proxied.printed().splitlines() if line.startswith("{")
        ]
        refused = [e for e in events if e.get("event") == "ratelimit.exceeded"]
        if any(e.get("ip") == spender.address for e in refused) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert any(e.get("ip") == spender.address for e in refused), refused
    assert "203.0.113.9" not in proxied.printed()


async def test_the_auth_limit_is_exact_across_both_instances(connect: Connect) -> None:
    attacker, owner, bystander = connect(), connect(), connect()
    email = await register(owner)
    attempts = await asyncio.gather(
        *(
            login(attacker, f"nobody-{i}-{os.urandom(3).hex()}@example.com", WRONG)
            for i in range(AUTH + 4)
        )
    )
    assert Counter(r.status_code for r in attempts) == {401: AUTH, 429: 4}
    assert len(upstreams(*attempts)) == 2
    # Once spent, the right password from that address is refused too, on both
    # instances; from any other address it works.
    after = [await login(attacker, email) for _ in range(2)]
    for r in after:
        assert_limited(r)
    assert len(upstreams(*after)) == 2
    assert (await login(bystander, email)).status_code == 200


async def test_a_lockout_is_exact_and_shared_across_both_instances(connect: Connect) -> None:
    email = await register(connect())
    # One failed login each from LOCKOUT + 3 addresses at once: the per-address limit
    # never acts, only the account's count.
    attempts = await asyncio.gather(*(login(connect(), email, WRONG) for _ in range(LOCKOUT + 3)))
    assert Counter(r.status_code for r in attempts) == {401: LOCKOUT, 429: 3}
    assert len(upstreams(*attempts)) == 2
    fresh = connect()
    after = [await login(fresh, email) for _ in range(2)]
    for r in after:
        assert_limited(r)
    assert len(upstreams(*after)) == 2


async def test_a_session_ended_through_one_instance_is_refused_by_the_other(
    proxied: Proxied, connect: Connect
) -> None:
    client = connect()
    email = await register(client)
    r = await login(client, email)
    assert r.status_code == 200, r.text
    bearer = {"Authorization": f"Bearer {r.json()['accessToken']}"}
    cookie = {"Cookie": f"{REFRESH_COOKIE}={r.cookies[REFRESH_COOKIE]}"}
    before = [await client.get("/api/users/me", headers=bearer) for _ in range(2)]
    assert [b.status_code for b in before] == [200, 200]
    assert upstreams(*before) == set(proxied.instances)

    ended = await client.post("/api/auth/logout", headers=cookie)
    assert ended.status_code == 204, ended.text
    after = [await client.get("/api/users/me", headers=bearer) for _ in range(2)]
    assert [a.status_code for a in after] == [401, 401]
    assert upstreams(*after) == set(proxied.instances)  # the other instance refused it too
    refreshed = [await client.post("/api/auth/refresh", headers=cookie) for _ in range(2)]
    assert [x.status_code for x in refreshed] == [401, 401]


async def test_security_headers_and_a_fresh_csp_nonce_survive_the_proxy(
    proxied: Proxied, connect: Connect
) -> None:
    client = connect()
    pages = [await client.get("/") for _ in range(4)]
    api = await client.get("/api/products")
    nonces = []
    for r in [*pages, api]:
        assert r.status_code == 200, r.text
        for name, value in DEFAULT_HEADERS.items():
            sent = r.headers.get_list(name)
            assert len(sent) == 1, (name, sent)
            pattern = re.escape(value).replace(re.escape("{nonce}"), "([A-Za-z0-9_-]{22,})")
            match = re.fullmatch(pattern, sent[0])
            assert match, (name, sent[0])
            if name == "content-security-policy":
                nonces.append(match.group(1))
        assert r.headers["server"] == "nginx"  # no version (server_tokens off), no uvicorn
        assert "x-powered-by" not in r.headers
    assert len(set(nonces)) == len(nonces)  # fresh for every response
    for r, nonce in zip(pages, nonces, strict=False):
        assert f'nonce="{nonce}"' in r.text  # the page's scripts carry the header's nonce
    assert upstreams(*pages) == set(proxied.instances)


async def test_plain_http_is_redirected_and_other_hosts_get_no_answer(proxied: Proxied) -> None:
    async with httpx.AsyncClient(timeout=5, verify=proxied.nginx.tls()) as client:
        r = await client.get(f"{proxied.nginx.http_url}/api/products", headers={"Host": HOST})
        assert r.status_code == 301
        assert r.headers["location"] == f"https://{HOST}/api/products"
        for url in (proxied.nginx.http_url, proxied.nginx.https_url):
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(f"{url}/api/products", headers={"Host": "evil.example"})


async def test_the_readiness_probe_is_not_served_to_the_public(connect: Connect) -> None:
    client = connect()
    assert (await client.get("/readyz")).status_code == 404
    assert (await client.get("/healthz")).status_code == 200

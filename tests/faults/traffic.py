"""Steady traffic against a real server while its dependencies fail: catalogue reads,
a user's order reads and creates, logins and readiness checks, from a few concurrent
clients, every outcome recorded with the phase it was sent and answered in.

Each request comes from a client address of its own (``X-Forwarded-For``, the server
trusting loopback), so the traffic never spends a global budget: a 429 in it would be
a fault. The global limit is proven by :func:`probe_global_limit` instead.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.conftest import PASSWORD

KINDS = ("catalogue", "orders.list", "orders.create", "login", "readyz")
# A request that takes longer than this is a hang.
HANG = 5.0
_ips = (f"2001:db8:{n:x}::1" for n in itertools.count(1))


def fresh_ip() -> str:
    """A client address no request has used (its own /64, so its own budget)."""
    return next(_ips)


@dataclass(frozen=True)
class Outcome:
    kind: str
    sent_in: str
    answered_in: str
    status: int | None  # None: no answer (a transport error or a hang)
    error: str | None
    headers: dict[str, str]
    body: str

    @property
    def stable(self) -> bool:
        """Sent and answered within one phase (not across a fault or a recovery)."""
        return self.sent_in == self.answered_in


@dataclass
class Account:
    email: str
    token: str
    product: str

    def order(self) -> dict[str, Any]:
        return {
            "items": [{"productId": self.product, "quantity": 1}],
            "shippingAddress": {
                "line1": "1 Outage Road",
                "city": "Faultham",
                "postcode": "FA1 1LT",
                "country": "GB",
            },
        }


async def sign_up(client: httpx.AsyncClient, name: str) -> Account:
    email = f"{name}@example.com"
    headers = {"X-Forwarded-For": fresh_ip()}
    body = {"email": email, "password": PASSWORD, "name": name}
    r = await client.post("/api/auth/register", json=body, headers=headers)
    assert r.status_code == 201, r.text
    r = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    products = (await client.get("/api/products", headers=headers)).json()["items"]
    return Account(email, r.json()["accessToken"], products[0]["id"])


@dataclass
class Traffic:
    """``async with Traffic(url, account) as traffic:`` sends until the block ends; set
    ``traffic.phase`` to name what the server is going through."""

    url: str
    account: Account
    workers: int = 4
    pause: float = 0.01
    phase: str = "up"
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def __aenter__(self) -> Traffic:
        self._client = httpx.AsyncClient(base_url=self.url, timeout=HANG)
        self._tasks = [asyncio.create_task(self._worker(n)) for n in range(self.workers)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        await self._client.aclose()

    async def run_for(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def until(self, ready: Callable[[httpx.Response], bool], *, within: float) -> float:
        """Poll ``/readyz`` until ``ready(response)``; returns how long it took. Fails if
        the server does not get there by itself ``within`` seconds."""
        start = time.monotonic()
        last = "no answer"
        while time.monotonic() - start < within:
            try:
                r = await self._client.get("/readyz")
                last = f"{r.status_code} {r.text}"
                if ready(r):
                    return time.monotonic() - start
            except httpx.TransportError as exc:
                last = repr(exc)
            await asyncio.sleep(0.1)
        raise AssertionError(f"not there after {within} s; /readyz said {last}")

    async def _worker(self, n: int) -> None:
        kinds = itertools.islice(itertools.cycle(KINDS), n, None)
        deadline = time.monotonic() + 120  # bounded, whatever the test does
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.outcomes.append(await self._send(next(kinds)))
            await asyncio.sleep(self.pause)

    async def _send(self, kind: str) -> Outcome:
        sent_in = self.phase
        headers = {"X-Forwarded-For": fresh_ip()}
        auth = {**headers, "Authorization": f"Bearer {self.account.token}"}
        client = self._client
        try:
            if kind == "catalogue":
                r = await client.get("/api/products?limit=5", headers=headers)
            elif kind == "orders.list":
                r = await client.get("/api/orders?limit=5", headers=auth)
            elif kind == "orders.create":
                r = await client.post("/api/orders", json=self.account.order(), headers=auth)
            elif kind == "login":
                body = {"email": self.account.email, "password": PASSWORD}
                r = await client.post("/api/auth/login", json=body, headers=headers)
            else:
                r = await client.get("/readyz")
        except httpx.HTTPError as exc:
            return Outcome(kind, sent_in, self.phase, None, repr(exc), {}, "")
        return Outcome(kind, sent_in, self.phase, r.status_code, None, dict(r.headers), r.text)

    def in_phase(self, phase: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.stable and o.sent_in == phase]


def statuses(outcomes: Iterable[Outcome]) -> dict[str, Counter[int | None]]:
    out: dict[str, Counter[int | None]] = {}
    for o in outcomes:
        out.setdefault(o.kind, Counter())[o.status] += 1
    return out


async def probe_global_limit(url: str, limit: int) -> list[int]:
    """``limit + 5`` catalogue requests from one fresh client address, one at a time;
    their statuses. Each 429 must carry ``Retry-After``."""
    ip = fresh_ip()
    out = []
    async with httpx.AsyncClient(base_url=url, timeout=HANG) as client:
        for _ in range(limit + 5):
            r = await client.get("/api/products?limit=1", headers={"X-Forwarded-For": ip})
            if r.status_code == 429:
                assert int(r.headers["retry-after"]) >= 1, r.headers
            out.append(r.status_code)
    return out

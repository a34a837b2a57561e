"""Credential stuffing against a running Bastion, with a returning user on the side.

An attacker floods ``POST /api/auth/login`` with wrong passwords for a rotating pool of
emails (and, with ``--xff``, a new ``X-Forwarded-For`` address per request, as a botnet
behind a trusted proxy would look). Meanwhile legitimate users, each from its own
loopback address and each keeping the cookies it was given (a browser's cookie jar, so
its device cookie too), log in with the right password every ``--interval`` seconds on
a fixed schedule. The same legitimate schedule runs first without the attack, and the
script prints their success rate and p50/p99 latency unloaded and under attack.

    .venv/bin/python bench/stuffing.py --serve                  # start Bastion on CPU 0
    .venv/bin/python bench/stuffing.py --url http://127.0.0.1:8000 --xff

``--serve`` starts ``bastion serve`` itself under ``taskset -c 0`` (production mode,
random secrets, embedded store, 127.0.0.1 trusted as the proxy, the contract's auth
limits, the global limit raised); this script pins itself to ``--client-cpus`` (default
1) like ``../shared/bench``. Standard library plus httpx (in the project's venv).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

LOGIN = "/api/auth/login"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def pin(cpus: str) -> None:
    """Re-run this script under ``taskset -c cpus`` (once), as the shared harness does."""
    if os.environ.get("BENCH_PINNED") == cpus or not shutil.which("taskset"):
        return
    os.environ["BENCH_PINNED"] = cpus
    os.execvp("taskset", ["taskset", "-c", cpus, sys.executable, *sys.argv])


@contextmanager
def serve(port: int, cpus: str | None) -> Iterator[str]:
    """A fresh production Bastion (SQLite + in-process store in a temporary directory)."""
    bastion = Path(sys.executable).with_name("bastion")
    workdir = Path(tempfile.mkdtemp(prefix="bastion-stuffing-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "BENCH_"))}
    env |= {
        "BASTION_ENV": "production",
        "BASTION_ACCESS_SECRET": secrets.token_urlsafe(48),
        "BASTION_REFRESH_SECRET": secrets.token_urlsafe(48),
        "BASTION_TRUSTED_PROXIES": "127.0.0.1/32",
        "BASTION_RATE_LIMIT_GLOBAL": "1000000000/minute",
        "BASTION_RATE_LIMIT_AUTH": "10/hour",
        "BASTION_LOCKOUT": "5/15minutes",
    }
    cmd = [str(bastion), "serve", "--host", "127.0.0.1", "--port", str(port)]
    if cpus is not None:
        cmd = ["taskset", "-c", cpus, *cmd]
    log = (workdir / "server.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"bastion exited; see {workdir / 'server.log'}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"bastion never became ready; see {workdir / 'server.log'}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


class Account:
    """A legitimate user on its own loopback address, with a cookie jar of its own
    (kept by hand: httpx would not send ``Secure`` cookies over plain HTTP)."""

    def __init__(self, url: str, n: int) -> None:
        self.email = f"legit-{n}-{secrets.token_hex(3)}@example.com"
        self.password = f"Legit-{secrets.token_urlsafe(12)}-Passphrase!"
        transport = httpx.AsyncHTTPTransport(local_address=f"127.0.2.{n + 1}")
        self.client = httpx.AsyncClient(base_url=url, transport=transport, timeout=10)
        self.cookies: dict[str, str] = {}

    async def register(self) -> None:
        body = {"email": self.email, "password": self.password, "name": "Legit"}
        r = await self.client.post("/api/auth/register", json=body)
        if r.status_code != 201:
            raise SystemExit(f"could not register {self.email}: {r.status_code} {r.text}")

    async def login(self) -> tuple[int | str, float]:
        headers = {}
        if self.cookies:
            headers["cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = {"email": self.email, "password": self.password}
        t0 = time.monotonic()
        try:
            r = await self.client.post(LOGIN, json=body, headers=headers)
        except httpx.HTTPError as exc:
            return type(exc).__name__, (time.monotonic() - t0) * 1000
        ms = (time.monotonic() - t0) * 1000
        for line in r.headers.get_list("set-cookie"):
            pair, _, attributes = line.partition(";")
            name, _, value = pair.strip().partition("=")
            if not value or "max-age=0" in attributes.replace(" ", "").lower():
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return r.status_code, ms


async def legit_phase(accounts: list[Account], seconds: float, interval: float) -> list[Any]:
    """One login every ``interval`` seconds, on schedule (open loop), round-robin."""
    tasks = []
    start = time.monotonic()
    k = 0
    while k * interval < seconds:
        delay = start + k * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(accounts[k % len(accounts)].login()))
        k += 1
    return list(await asyncio.gather(*tasks))


async def _post(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes) -> int:
    """One request on a kept-alive connection; a bare HTTP/1.1 client, so that the
    attacker (one core of Python) is not the bottleneck."""
    reader, writer = conn
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def _attack(url: str, seconds: float, concurrency: int, emails: int, xff: bool) -> Counter:
    statuses: Counter[int | str] = Counter()
    stop = time.monotonic() + seconds
    seed = secrets.randbelow(1_000_000)
    host = httpx.URL(url).host
    port = httpx.URL(url).port or 80

    async def worker(w: int) -> None:
        n = w
        conn = None
        while time.monotonic() < stop:
            n += concurrency
            body = (
                f'{{"email":"stuffed-{(seed + n) % emails}@example.com",'
                f'"password":"Wrong-Password-{n:08d}!"}}'
            ).encode()
            extra = ""
            if xff:  # 198.18.0.0/15, the benchmarking range: a new address each time
                i = (seed + n) % 131072
                extra = f"X-Forwarded-For: 198.{18 + i // 65536}.{i // 256 % 256}.{i % 256}\r\n"
            request = (
                f"POST {LOGIN} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"{extra}\r\n"
            ).encode() + body
            try:
                if conn is None:
                    conn = await asyncio.open_connection(host, port)
                statuses[await asyncio.wait_for(_post(conn, request), 10)] += 1
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                statuses[type(exc).__name__] += 1
                if conn is not None:
                    conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return statuses


def attacker(url: str, seconds: float, concurrency: int, emails: int, xff: bool, out: Any) -> None:
    out.put(dict(asyncio.run(_attack(url, seconds, concurrency, emails, xff))))


def summary(label: str, samples: list[Any]) -> str:
    ok = [ms for status, ms in samples if status == 200]
    rate = 100 * len(ok) / len(samples) if samples else 0.0
    other = Counter(s for s, _ in samples if s != 200)
    return (
        f"| {label} | {len(samples)} | {rate:.1f}% | {percentile(ok, 50):.1f} ms"
        f" | {percentile(ok, 99):.1f} ms | {dict(other) or '-'} |"
    )


async def run(args: argparse.Namespace, url: str) -> None:
    accounts = [Account(url, n) for n in range(args.legit_users)]
    for account in accounts:
        await account.register()
    await legit_phase(accounts, min(2.0, args.baseline), args.interval)  # warm-up: cookies
    baseline = await legit_phase(accounts, args.baseline, args.interval)

    queue: Any = multiprocessing.get_context("spawn").Queue()
    proc = multiprocessing.get_context("spawn").Process(
        target=attacker, args=(url, args.duration, args.concurrency, args.emails, args.xff, queue)
    )
    proc.start()
    await asyncio.sleep(0.5)  # let the flood build up
    attacked = await legit_phase(accounts, args.duration - 0.5, args.interval)
    statuses = queue.get(timeout=args.duration + 30)
    proc.join(10)
    for account in accounts:
        await account.client.aclose()

    total = sum(statuses.values())
    print(f"\nattack: {total / args.duration:,.0f} req/s, statuses {statuses}")
    print(
        f"attack shape: {args.emails} rotating emails, "
        f"{'a new X-Forwarded-For per request' if args.xff else 'one address'}\n"
    )
    print("| legitimate logins | attempts | success | p50 | p99 | failures |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    print(summary("unloaded", baseline))
    print(summary("under attack", attacked))
    ok_before = [ms for s, ms in baseline if s == 200]
    ok_during = [ms for s, ms in attacked if s == 200]
    if ok_before and ok_during:
        ratio = percentile(ok_during, 99) / percentile(ok_before, 99)
        print(f"\np99 under attack / unloaded: {ratio:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", help="a running Bastion (default: start one with --serve)")
    ap.add_argument("--serve", action="store_true", help="start Bastion pinned to --server-cpus")
    ap.add_argument("--port", type=int, default=8765, help="port for --serve")
    ap.add_argument("--duration", type=float, default=8.0, help="seconds of attack")
    ap.add_argument("--baseline", type=float, default=5.0, help="seconds of unloaded logins")
    ap.add_argument("--interval", type=float, default=0.2, help="seconds between legit logins")
    ap.add_argument("--legit-users", type=int, default=4, help="legitimate accounts")
    ap.add_argument("--concurrency", type=int, default=64, help="attacker connections")
    ap.add_argument("--emails", type=int, default=1000, help="attacker's email pool")
    ap.add_argument("--xff", action="store_true", help="rotate X-Forwarded-For (trusted proxy)")
    ap.add_argument("--server-cpus", default="0")
    ap.add_argument("--client-cpus", default="1")
    ap.add_argument("--no-pin", action="store_true", help="do not use taskset")
    args = ap.parse_args()
    pinning = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    if pinning:
        pin(args.client_cpus)
    if args.serve:
        with serve(args.port, args.server_cpus if pinning else None) as url:
            asyncio.run(run(args, url))
    elif args.url:
        asyncio.run(run(args, args.url))
    else:
        ap.error("give --url of a running Bastion, or --serve")


if __name__ == "__main__":
    main()

"""API4:2023 Unrestricted Resource Consumption.

The attacker makes the API spend without bound: huge bodies, floods of requests, huge
pages, GraphQL queries that are deep, aliased or long, and logins that keep the password
hasher busy. The defences: a 10 KiB body limit enforced as bytes arrive, an exact global
rate limit, bounded page sizes, GraphQL depth, alias, token and ``first`` limits checked
before anything runs, and a hasher with bounded concurrency that sheds instead of piling."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import AsyncIterator
from itertools import pairwise
from typing import Any

import httpx
import pytest
from graphql.language import Lexer, Source, TokenKind

from bastion.app import BastionApp
from tests.api.graphql.conftest import data, gql
from tests.api.graphql.test_http import QUERY
from tests.api.graphql.test_limits import DEPTH_3, aliases
from tests.api.problem import assert_problem
from tests.api.test_request_errors import LIMIT, _big_order
from tests.auth.conftest import record_events
from tests.conftest import (
    ON_EVERY_STORE,
    PASSWORD,
    Client,
    Clients,
    CountingDatabase,
    StartApp,
    client_for,
)
from tests.security.conftest import (
    WRONG,
    GatedArgon,
    install_hasher,
    ratelimit_fields,
    wait_until,
)

# ------------------------------------------------------------------------ log masking


async def test_field_names_built_to_make_log_masking_backtrack_never_stall_the_server(
    client: Client,
) -> None:
    """Attacker: registers with an unknown field named ``tokentoken...`` (8 KiB, under
    the body limit), hoping the rejection's event names it: every event and log line is
    masked for secrets, and the pattern this replaced backtracked on such words, holding
    the event loop (every request of the process) for seconds per request. Defence: the
    event names a made-up field ``*``, and masking runs in linear time anyway
    (tests/security/test_redaction.py); other requests are served all along."""
    events = record_events(client.app)
    loop = asyncio.get_running_loop()
    ticks = [loop.time()]
    stop = asyncio.Event()

    async def probe() -> None:
        # Ticks every 5 ms while the loop is free to run it.
        while not stop.is_set():
            await asyncio.sleep(0.005)
            ticks.append(loop.time())

    probing = asyncio.create_task(probe())
    key = "token" * 1600
    body = {"email": "a@example.com", "password": PASSWORD, "name": "A", key: 1}
    try:
        for _ in range(3):
            r = await client.post("/api/auth/register", json=body)
            assert_problem(r, 400)
    finally:
        stop.set()
        await probing
    ticks.append(loop.time())
    gaps = [b - a for a, b in pairwise(ticks)]
    rejected = [e for e in events if e["event"] == "input.rejected"]
    assert len(rejected) == 3
    assert all(e["reason"] == "invalid fields: #/*" for e in rejected)
    # A stall shows as one long gap; the old pattern's were 2 to 9 s each.
    assert max(gaps) < 1.0, f"the event loop stalled for {max(gaps):.2f} s"


# ------------------------------------------------------------------------ body size


async def test_a_body_over_10240_bytes_with_content_length_is_a_413(client: Client) -> None:
    """Attacker: posts a body over 10 KiB. Defence: its Content-Length alone gets a 413."""
    user = await client.user()
    raw = _big_order((await client.product_ids())[0], LIMIT + 1)
    r = await client.post(
        "/api/orders", content=raw, headers={**user["headers"], "Content-Type": "application/json"}
    )
    assert r.request.headers["content-length"] == str(LIMIT + 1)
    assert_problem(r, 413)


async def test_a_streamed_body_over_10240_bytes_is_a_413(client: Client) -> None:
    """Attacker: streams a body with no length. Defence: bytes are counted as they come; 413."""
    user = await client.user()
    raw = _big_order((await client.product_ids())[0], 4 * LIMIT)
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 1024):
            sent.append(start)
            yield raw[start : start + 1024]

    r = await client.post(
        "/api/orders",
        content=chunks(),
        headers={**user["headers"], "Content-Type": "application/json"},
    )
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert_problem(r, 413)
    # Refused as the bytes came in, not after reading everything.
    assert len(sent) <= LIMIT // 1024 + 2


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/login", "/api/users/me"])
async def test_the_size_limit_holds_on_every_route(client: Client, path: str) -> None:
    """Attacker: looks for a route without the limit. Defence: the middleware covers all; 413."""
    user = await client.user()
    raw = json.dumps({"name": "x" * (LIMIT + 10)}).encode()
    r = await client.request(
        "PATCH" if path.endswith("/me") else "POST",
        path,
        content=raw,
        headers={**user["headers"], "Content-Type": "application/json"},
    )
    assert_problem(r, 413)


async def test_the_413_comes_before_authentication_and_parsing(client: Client) -> None:
    """Attacker: sends a huge body with no token. Defence: 413 before auth or parsing."""
    r = await client.post(
        "/api/orders",
        content=b"{" * (LIMIT + 1),
        headers={"Content-Type": "application/json"},
    )
    assert_problem(r, 413)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_over_10_kib_is_a_413_before_parsing(client: Client, chunked: bool) -> None:
    """Attacker: posts a GraphQL body over 10 KiB. Defence: 413 before any GraphQL is parsed."""
    # Valid GraphQL all the way: the padding is a comment.
    body = ('{"query": "' + QUERY + " #" + "x" * 10_300 + '"}').encode()
    assert len(body) > 10 * 1024
    content: Any = body
    if chunked:

        async def stream() -> Any:
            for i in range(0, len(body), 1000):
                yield body[i : i + 1000]

        content = stream()
    r = await client.post(
        "/api/graphql", content=content, headers={"Content-Type": "application/json"}
    )
    assert_problem(r, 413)


# ------------------------------------------------------------------------ rate limit


async def test_the_global_limit_allows_exactly_its_budget_then_answers_429(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: floods from one address. Defence: the global limit, exactly; then 429, event."""
    app = await start_guarded(rate_limit_global="5/minute")
    events = record_events(app)
    client = clients(app, "203.0.113.1")
    remaining = []
    for _ in range(5):
        r = await client.get("/api/products")
        assert r.status_code == 200
        remaining.append(ratelimit_fields(r.headers)["global"]["r"])
    assert remaining == [4, 3, 2, 1, 0]
    r = await client.get("/api/products")
    assert r.status_code == 429
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 429
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert ratelimit_fields(r.headers) == {
        "global": {"q": 5, "w": 60, "r": 0, "t": pytest.approx(60, abs=1)}
    }
    assert [(e["event"], e["ip"]) for e in events] == [("ratelimit.exceeded", "203.0.113.1")]


@pytest.mark.parametrize("backend", ON_EVERY_STORE, indirect=True)
async def test_fifty_parallel_requests_against_a_limit_of_n_let_exactly_n_through(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: races 50 requests at a limit of 17. Defence: atomic counting lets 17 through."""
    app = await start_guarded(rate_limit_global="17/minute")
    client = clients(app, "203.0.113.1")
    responses = await asyncio.gather(*(client.get("/api/products") for _ in range(50)))
    assert Counter(r.status_code for r in responses) == {200: 17, 429: 33}


async def test_a_refused_request_never_reaches_the_route(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: keeps sending after a 429. Defence: refused before the route does any work."""
    app = await start_guarded(rate_limit_global="1/minute")
    client = clients(app, "203.0.113.1")
    await client.get("/api/products")
    r = await client.post("/api/auth/login", json={"email": "a@example.com", "password": WRONG})
    assert r.status_code == 429
    assert "auth" not in ratelimit_fields(r.headers)
    guard = app.services.guard
    assert (await guard.store.peek(guard.ip_key("203.0.113.1"), limit=10)).count == 0


# ------------------------------------------------------------------------- page size


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", "1e2", "", "10" * 20])
@pytest.mark.parametrize("path", ["/api/products", "/api/orders"])
async def test_a_limit_outside_1_to_100_is_refused(client: Client, path: str, limit: str) -> None:
    """Attacker: asks for huge or odd page sizes. Defence: limit must be 1 to 100, else 400."""
    user = await client.user()
    r = await client.get(path, params={"limit": limit}, headers=user["headers"])
    assert_problem(r, 400, "#/query/limit")


# ------------------------------------------------------------------- GraphQL limits


def tokens(query: str) -> int:
    """graphql-core's own count of the query's tokens."""
    lexer, n = Lexer(Source(query)), 0
    while lexer.advance().kind != TokenKind.EOF:
        n += 1
    return n


DEPTH_4 = {
    "fields": "{ me { orders { items { product { id } } } } }",
    "fragments": (
        "{ me { ...U } } fragment U on User { orders { ...O } }"
        " fragment O on Order { items { ...I } } fragment I on OrderItem { product { ...P } }"
        " fragment P on Product { id }"
    ),
    "inline-fragments": (
        "{ me { ... on User { orders { ... on Order { items { product { id } } } } } } }"
    ),
    "fragment-used-shallow-and-deep": (
        "{ me { orders { ...I } } } fragment I on Order { items { product { id } } }"
    ),
    "second-operation": "query A "
    + DEPTH_3
    + " query B "
    + "{ me { orders { items { product { id } } } } }",
}


@pytest.mark.parametrize("query", DEPTH_4.values(), ids=DEPTH_4.keys())
async def test_a_query_one_level_past_the_depth_limit_is_a_400(start_app: Any, query: str) -> None:
    """Attacker: nests one level too deep, also through fragments. Defence: depth limit, 400."""
    async with client_for(await start_app(graphql_max_depth=3)) as client:
        user = await client.user()
        r = await gql(client, query, user=user, operationName="A" if "query A" in query else None)
        body = assert_problem(r, 400, "#/query")
        assert body["detail"] == "The query is 4 levels deep; at most 3 are allowed."


async def test_a_long_chain_of_nested_fragments_is_counted_in_full(client: Client) -> None:
    """Attacker: hides depth in a chain of fragments. Defence: depth counts through them, 400."""
    chain = " ".join(f"fragment F{i} on Query {{ f {{ ...F{i + 1} }} }}" for i in range(79))
    query = f"{{ ...F0 }} {chain} fragment F79 on Query {{ f }}"
    assert tokens(query) <= 1000
    body = assert_problem(await gql(client, query), 400, "#/query")
    assert body["detail"] == "The query is 79 levels deep; at most 6 are allowed."


@pytest.mark.parametrize(
    "query",
    [
        "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
        "{ ...A } fragment A on Query { products { ...B } } fragment B on Product { ...B }",
        "{ me { ...A } } fragment A on User { orders { items { ...A } } }",
    ],
    ids=["two-fragments", "self", "through-fields"],
)
async def test_cyclic_fragments_are_a_400_not_a_crash(client: Client, query: str) -> None:
    """Attacker: makes fragments spread each other. Defence: refused as invalid, 400, no crash."""
    user = await client.user()
    body = assert_problem(await gql(client, query, user=user), 400, "#/query")
    assert any("within itself" in e["detail"] for e in body["errors"]), body


async def test_fifteen_aliases_run_and_sixteen_are_a_400(client: Client) -> None:
    """Attacker: repeats a costly field under aliases. Defence: at most 15 aliases, 400."""
    query = "{ " + aliases(15, "products(first: 1) { id }") + " }"
    assert len(data(await gql(client, query))) == 15
    query = "{ " + aliases(16, "products(first: 1) { id }") + " }"
    body = assert_problem(await gql(client, query), 400, "#/query")
    assert body["detail"] == "The query uses 16 aliases; at most 15 are allowed."


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("{ " + aliases(16) + " }", 16),
        # Aliases in a fragment count once per place it is spread (strawberry before
        # 0.315.7 counted them once: GHSA-fr49-mhgj-crfc).
        ("{ ...A ... on Query { ...A } } fragment A on Query { " + aliases(8) + " }", 16),
        (
            "{ me { ...U } x: me { ...U } } fragment U on User { orders { ...O } }"
            " fragment O on Order { " + aliases(8, "id") + " }",
            17,
        ),
    ],
    ids=["typename", "fragment-spread-twice", "nested-fragments-under-aliases"],
)
async def test_aliases_are_counted_through_fragments_and_on_typename(
    client: Client, query: str, count: int
) -> None:
    """Attacker: hides aliases in fragments spread twice. Defence: counted per spread, 400."""
    user = await client.user()
    body = assert_problem(await gql(client, query, user=user), 400, "#/query")
    assert body["detail"] == f"The query uses {count} aliases; at most 15 are allowed."


async def test_an_alias_bomb_of_doubling_fragments_is_refused_at_once(client: Client) -> None:
    """Attacker: doubles fragments 60 times (2^60 aliases). Defence: counted, not walked; 400."""
    # Each fragment spreads the next twice: 2^60 copies of 15 aliases, in under 700
    # tokens. Counting by walking every spread would never finish.
    chain = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(60))
    query = f"{{ ...F0 }} {chain} fragment F60 on Query {{ {aliases(15)} }}"
    assert tokens(query) <= 1000
    body = assert_problem(await gql(client, query), 400, "#/query")
    assert body["detail"] == "The query uses over a million aliases; at most 15 are allowed."


async def test_a_thousand_tokens_run_and_one_more_is_a_400(client: Client) -> None:
    """Attacker: sends an enormous query. Defence: at most 1000 tokens, then 400."""

    def query(padding: int) -> str:
        return "{ " + "products(first: 1) { id } " * 110 + "__typename " * padding + "}"

    assert tokens(query(8)) == 1000
    assert len(data(await gql(client, query(8)))["products"]) == 1
    body = assert_problem(await gql(client, query(9)), 400, "#/query")
    assert body["detail"] == "The query has more than 1000 tokens; at most 1000 are allowed."


@pytest.mark.parametrize(
    ("query", "variables", "pointer", "shown"),
    [
        ("{ products(first: 101) { id } }", None, "#/query", "101"),
        ("{ products(first: 0) { id } }", None, "#/query", "0"),
        ("{ me { orders(first: -1) { id } } }", None, "#/query", "-1"),
        ("query($n: Int!) { products(first: $n) { id } }", {"n": 101}, "#/variables/n", "101"),
        (
            "query($n: Int!) { products(first: $n) { id } }",
            {"n": 10**12},
            "#/variables/n",
            "a larger number",
        ),
        ("query($n: Int = 500) { products(first: $n) { id } }", {}, "#/variables/n", "500"),
        ("{ ...F } fragment F on Query { products(first: 1000) { id } }", None, "#/query", "1000"),
    ],
    ids=[
        "101",
        "0",
        "negative-on-orders",
        "variable",
        "huge-variable",
        "variable-default",
        "in-fragment",
    ],
)
async def test_first_outside_1_to_100_is_a_400(
    client: Client, query: str, variables: dict[str, Any] | None, pointer: str, shown: str
) -> None:
    """Attacker: asks first for huge pages (literal, variable, default). Defence: 1 to 100, 400."""
    user = await client.user()
    body = assert_problem(await gql(client, query, user=user, variables=variables), 400, pointer)
    assert body["detail"] == f"first must be between 1 and 100, not {shown}."


async def test_a_query_over_a_limit_touches_nothing_and_is_logged(
    app: BastionApp,
    client: Client,
    statements: CountingDatabase,
    events: list[dict[str, Any]],
) -> None:
    """Attacker: sends an over-limit query. Defence: refused and logged before any SQL runs."""
    user = await client.user()
    statements.reset()
    query = "{ me { orders(first: 101) { id items { product { name } } } } products { id } }"
    assert_problem(await gql(client, query, user=user), 400, "#/query")
    assert statements.statements == []
    rejected = [e for e in events if e["event"] == "input.rejected"]
    assert [(e["reason"], e["user_id"], e["path"]) for e in rejected] == [
        ("graphql limit: first", user["id"], "/api/graphql")
    ]


# ---------------------------------------------------------------------- the hasher


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, calls: list[str]) -> None:
    """Append ``name`` to ``calls`` whenever ``owner``'s async method ``name`` runs
    (patched on the class: the store and database objects have slots)."""
    real = getattr(type(owner), name)

    async def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(type(owner), name, counting)


def wrong_logins(
    app: BastionApp, clients: Clients, count: int, user: str
) -> list[asyncio.Task[httpx.Response]]:
    """``count`` wrong-password logins, each from its own address, left running."""
    return [
        asyncio.create_task(
            clients(app, f"192.0.2.{n}").post(
                "/api/auth/login", json={"email": f"{user}{n}@example.com", "password": WRONG}
            )
        )
        for n in range(count)
    ]


async def test_login_answers_503_with_retry_after_when_the_hasher_is_saturated(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: fills the password hasher. Defence: a bounded line; the rest get 503."""
    app = await start_guarded(rate_limit_auth="10/hour")
    argon = GatedArgon(closed=True)
    hasher = await install_hasher(app, argon, concurrency=1, queue=1)
    busy = wrong_logins(app, clients, 2, "u")
    try:
        await wait_until(lambda: hasher.running == 1 and hasher.waiting == 1, "hasher full")
        client = clients(app, "203.0.113.5")
        r = await client.post(
            "/api/auth/login", json={"email": "late@example.com", "password": WRONG}
        )
    finally:
        argon.gate.set()
    assert r.status_code == 503
    assert int(r.headers["retry-after"]) >= 1
    assert [t.status_code for t in await asyncio.gather(*busy)] == [401, 401]
    # The refused attempt was never judged: it does not count against the address.
    guard = app.services.guard
    assert (await guard.store.peek(guard.ip_key("203.0.113.5"), limit=10)).count == 0


async def test_a_login_that_waits_too_long_for_the_hasher_gets_503_and_counts_nothing(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: keeps the hasher's slot busy with hashes that do not end (or starves
    them of CPU), so that the guesses in line behind wait as long as that lasts,
    holding their connections. Defence: a place waits at most the hasher's
    ``max_wait``, then gets 503 with ``Retry-After``; the attempt was never judged, so
    its reserved slots are given back (the address and the account count nothing)."""
    app = await start_guarded(rate_limit_auth="10/hour", lockout="5/15minutes")
    argon = GatedArgon(closed=True)
    hasher = await install_hasher(app, argon, concurrency=1, queue=1, max_wait=0.3)
    busy = wrong_logins(app, clients, 1, "u")
    try:
        await wait_until(lambda: hasher.running == 1, "the slot is busy")
        client = clients(app, "203.0.113.30")
        r = await asyncio.wait_for(
            client.post("/api/auth/login", json={"email": "wait@example.com", "password": WRONG}),
            timeout=10,
        )
        assert not busy[0].done()
    finally:
        argon.gate.set()
    assert_problem(r, 503)
    assert r.headers["retry-after"] == "1"
    assert [t.status_code for t in await asyncio.gather(*busy)] == [401]
    guard = app.services.guard
    assert (await guard.store.peek(guard.ip_key("203.0.113.30"), limit=10)).count == 0
    assert (await guard.store.peek(guard.account_key("wait@example.com"), limit=5)).count == 0
    assert hasher.waiting == 0


async def test_while_the_hasher_is_full_a_flood_costs_no_store_or_database_work(
    start_guarded: StartApp, clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attacker: keeps the hasher full and floods login and register, so that every
    refused request still costs a store round trip and a database lookup. Defence: an
    attempt the hasher would refuse is refused first, before anything else is spent."""
    app = await start_guarded(rate_limit_auth="10/hour")
    argon = GatedArgon(closed=True)
    hasher = await install_hasher(app, argon, concurrency=1, queue=1)
    busy = wrong_logins(app, clients, 2, "u")
    spent: list[str] = []
    store, db = app.services.store, app.services.db
    try:
        await wait_until(lambda: hasher.running == 1 and hasher.waiting == 1, "hasher full")
        # (The global limit still takes its one round trip per request, as for any route.)
        for owner, name in [(store, "take"), (db, "fetchrow"), (db, "fetch")]:
            count_calls(monkeypatch, owner, name, spent)
        client = clients(app, "203.0.113.6")
        statuses = [
            (await client.post(path, json=body)).status_code
            for path, body in [
                ("/api/auth/login", {"email": "flood@example.com", "password": WRONG}),
                (
                    "/api/auth/register",
                    {"email": "new@example.com", "password": "Flood-Passphrase-77", "name": "F"},
                ),
            ]
            for _ in range(10)
        ]
    finally:
        argon.gate.set()
    assert statuses == [503] * 20
    assert spent == []
    assert [t.status_code for t in await asyncio.gather(*busy)] == [401, 401]


async def test_attempts_let_in_at_once_never_overfill_the_hasher_line(
    start_guarded: StartApp, clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attacker: sends a burst of guesses at one instant, so that all of them pass the
    "is the line full?" check before any has done its store and database work and
    joined the line. Defence: the place is taken at that check: exactly as many attempts
    as the hasher holds (one slot and a line of two) cost a reservation; the rest are
    refused with no store work at all."""
    app = await start_guarded(rate_limit_auth="10/hour")
    argon = GatedArgon(closed=True)
    hasher = await install_hasher(app, argon, concurrency=1, queue=2)
    reserved: list[str] = []
    count_calls(monkeypatch, app.services.store, "take", reserved)
    burst = wrong_logins(app, clients, 12, "burst")
    try:
        await wait_until(lambda: sum(t.done() for t in burst) == 9, "the rest refused")
        assert hasher.running + hasher.waiting == 3
    finally:
        argon.gate.set()
    assert Counter(t.status_code for t in await asyncio.gather(*burst)) == {401: 3, 503: 9}
    assert len(reserved) == 3


async def test_a_shed_login_is_refused_before_the_framework_reads_it(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: floods login while the hasher is full, with bodies the framework would
    have to read, parse and validate before the route could refuse them. Defence: with
    no validly signed device cookie, the refusal comes from the request line and
    headers: even a body that is not valid JSON gets the 503 (not a 400), carrying the
    global limit's fields and the security headers like any answer."""
    app = await start_guarded(rate_limit_auth="10/hour")
    argon = GatedArgon(closed=True)
    hasher = await install_hasher(app, argon, concurrency=1, queue=1)
    busy = wrong_logins(app, clients, 2, "u")
    client = clients(app, "203.0.113.9")
    forged = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    try:
        await wait_until(lambda: hasher.running == 1 and hasher.waiting == 1, "hasher full")
        answers = [
            await client.post(
                "/api/auth/login",
                content=b"{not json",
                headers={"content-type": "application/json", **headers},
            )
            for headers in ({}, {"cookie": f"__Secure-deviceToken={forged}"})
        ]
    finally:
        argon.gate.set()
    for sent, r in enumerate(answers, start=1):
        problem = assert_problem(r, 503)
        assert problem["detail"] == "The request cannot be served."
        assert r.headers["retry-after"] == "1"
        # Counted by the global limit like any request of this address: its n-th.
        spent = ratelimit_fields(r.headers)["global"]
        assert spent["r"] == spent["q"] - sent
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-request-id"]
    await asyncio.gather(*busy)


async def test_a_device_cookie_for_another_account_is_shed_by_the_route(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: logs in to an account of their own and sends its (validly signed)
    device cookie with guesses at other accounts, to get past the early refusal.
    Defence: the route binds the cookie to the account the body names: the guess is
    untrusted there, and refused the same way, before any store or database work."""
    app = await start_guarded(rate_limit_auth="10/hour")
    attacker = clients(app, "203.0.113.10")
    own = await attacker.register()
    assert (await attacker.post("/api/auth/login", json=_body(own["email"]))).status_code == 200
    argon = GatedArgon(closed=True)
    hasher = await install_hasher(app, argon, concurrency=1, queue=1)
    busy = wrong_logins(app, clients, 2, "u")
    guard = app.services.guard
    try:
        await wait_until(lambda: hasher.running == 1 and hasher.waiting == 1, "hasher full")
        r = await attacker.post(
            "/api/auth/login", json={"email": "victim@example.com", "password": WRONG}
        )
    finally:
        argon.gate.set()
    assert_problem(r, 503)
    assert r.headers["retry-after"] == "1"
    assert (await guard.store.peek(guard.ip_key("203.0.113.10"), limit=10)).count == 0
    await asyncio.gather(*busy)


async def test_a_returning_user_logs_in_while_an_attack_fills_the_hasher(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: fills the hasher's slots and line with guesses that never finish.
    Defence: a known device has slots of its own: it logs in while every guess is still
    hashing, and a stranger is refused at once."""
    app = await start_guarded()
    browser = clients(app, "203.0.113.5")
    user = await browser.register()
    assert (await browser.post("/api/auth/login", json=_body(user["email"]))).status_code == 200
    argon = GatedArgon(closed=True, ungated=frozenset({PASSWORD}))
    hasher = await install_hasher(app, argon, concurrency=1, queue=4)
    attack = wrong_logins(app, clients, 5, "victim")
    try:
        await wait_until(lambda: hasher.running == 1 and hasher.waiting == 4, "attack fills line")
        stranger = clients(app, "203.0.113.6")
        r = await stranger.post("/api/auth/login", json=_body(user["email"]))
        assert r.status_code == 503
        assert (await browser.post("/api/auth/login", json=_body(user["email"]))).status_code == 200
        assert not any(t.done() for t in attack)
    finally:
        argon.gate.set()
    statuses = Counter(t.status_code for t in await asyncio.gather(*attack))
    assert statuses == {401: 5}


async def test_a_trusted_arrival_on_a_full_line_sheds_an_attacker_waiting_in_it(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: fills every slot and the whole line, returning users' slots included.
    Defence: a known device still gets a place: the newest guess waiting is shed."""
    app = await start_guarded()
    browsers = [clients(app, f"203.0.113.{n}") for n in (7, 8)]
    users = [await b.register() for b in browsers]
    for b, u in zip(browsers, users, strict=True):
        assert (await b.post("/api/auth/login", json=_body(u["email"]))).status_code == 200
    argon = GatedArgon(closed=True)
    hasher = await install_hasher(app, argon, concurrency=1, queue=3)
    attack = wrong_logins(app, clients, 4, "victim")
    try:
        await wait_until(lambda: hasher.running == 1 and hasher.waiting == 3, "attack fills line")
        first = asyncio.create_task(
            browsers[0].post("/api/auth/login", json=_body(users[0]["email"]))
        )
        await wait_until(lambda: hasher.running == 2, "the returning user's hash runs")
        second = asyncio.create_task(
            browsers[1].post("/api/auth/login", json=_body(users[1]["email"]))
        )
        await wait_until(lambda: any(t.done() for t in attack), "an attacker shed")
    finally:
        argon.gate.set()
    assert [(await first).status_code, (await second).status_code] == [200, 200]
    statuses = Counter(t.status_code for t in await asyncio.gather(*attack))
    assert statuses == {401: 3, 503: 1}


async def _returning_user_stuck_hashing(
    app: BastionApp, clients: Clients, argon_gate: threading.Event
) -> tuple[asyncio.Task[httpx.Response], list[asyncio.Task[httpx.Response]], GatedArgon]:
    """A returning user's login whose hash waits for ``argon_gate``, started while
    guesses fill the hasher (one slot, a line of one): returns it, the guesses and the
    hasher's argon (its ``gate`` holds the guesses)."""
    browser = clients(app, "203.0.113.20")
    user = await browser.register()
    assert (await browser.post("/api/auth/login", json=_body(user["email"]))).status_code == 200
    argon = GatedArgon(closed=True, gates={PASSWORD: argon_gate})
    hasher = await install_hasher(app, argon, concurrency=1, queue=1)
    attack = wrong_logins(app, clients, 2, "victim")
    await wait_until(lambda: hasher.running == 1 and hasher.waiting == 1, "attack fills line")
    returning = asyncio.create_task(browser.post("/api/auth/login", json=_body(user["email"])))
    await wait_until(lambda: hasher.running == 2, "the returning user's hash runs")
    return returning, attack, argon


async def test_refusals_wait_while_a_returning_user_logs_in(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: floods login from a fixed pool of connections, each sending its next
    guess as soon as the last is refused, so that refusing is all the event loop does
    and the returning user's login waits behind it at every step. Defence: while a
    login with a validly signed device cookie is in flight, refusals are held until it
    is done: the flood's connections wait, the returning user goes first."""
    app = await start_guarded()
    own_gate = threading.Event()
    returning, attack, argon = await _returning_user_stuck_hashing(app, clients, own_gate)
    state = app.services.returning
    try:
        assert state.in_flight == 1
        stranger = asyncio.create_task(
            clients(app, "203.0.113.21").post(
                "/api/auth/login", json={"email": "victim@example.com", "password": WRONG}
            )
        )
        await wait_until(lambda: state.held == 1, "the refusal held")
        assert not stranger.done()
        own_gate.set()
        assert (await returning).status_code == 200
        r = await stranger
        assert_problem(r, 503)
        assert r.headers["retry-after"] == "1"
        spent = ratelimit_fields(r.headers)["global"]
        assert spent["r"] == spent["q"] - 1  # the stranger's one request, counted once
        assert (state.in_flight, state.held) == (0, 0)
    finally:
        own_gate.set()
        argon.gate.set()
    assert Counter(t.status_code for t in await asyncio.gather(*attack)) == {401: 2}


async def test_a_refusal_is_held_no_longer_than_the_hold_maximum(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: keeps a login with a valid device cookie in flight (their own account,
    on a slow hash) to hold every refusal forever. Defence: a refusal waits at most
    ``hold_max``; it is sent while that login is still in flight."""
    app = await start_guarded()
    own_gate = threading.Event()
    returning, attack, argon = await _returning_user_stuck_hashing(app, clients, own_gate)
    state = app.services.returning
    state.hold_max = 0.2
    try:
        r = await clients(app, "203.0.113.22").post(
            "/api/auth/login", json={"email": "victim@example.com", "password": WRONG}
        )
        assert_problem(r, 503)
        assert not returning.done()
        assert (state.in_flight, state.held) == (1, 0)
    finally:
        own_gate.set()
        argon.gate.set()
    assert (await returning).status_code == 200
    await asyncio.gather(*attack)


async def test_refusals_past_the_hold_limit_are_sent_at_once(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: opens ever more connections while refusals are held, so that held
    answers pile up without bound. Defence: past ``hold_limit`` held at once, a refusal
    is sent at once."""
    app = await start_guarded()
    own_gate = threading.Event()
    returning, attack, argon = await _returning_user_stuck_hashing(app, clients, own_gate)
    state = app.services.returning
    state.hold_limit = 1
    guess = {"email": "victim@example.com", "password": WRONG}
    try:
        first = asyncio.create_task(
            clients(app, "203.0.113.23").post("/api/auth/login", json=guess)
        )
        await wait_until(lambda: state.held == 1, "the first refusal held")
        second = await clients(app, "203.0.113.24").post("/api/auth/login", json=guess)
        assert_problem(second, 503)
        assert not first.done()
    finally:
        own_gate.set()
        argon.gate.set()
    assert_problem(await first, 503)
    assert (await returning).status_code == 200
    await asyncio.gather(*attack)


async def test_a_forged_device_cookie_holds_no_refusal(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: sends guesses with a forged device cookie, to pass for a returning user
    and hold everyone's refusals. Defence: only a validly signed cookie counts; with a
    forged one in flight, refusals are sent at once."""
    app = await start_guarded()
    argon = GatedArgon(closed=True)
    hasher = await install_hasher(app, argon, concurrency=1, queue=1)
    forged = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    attacker = clients(app, "203.0.113.25")
    attacker.cookies.set("__Secure-deviceToken", forged)
    guess = {"email": "victim@example.com", "password": WRONG}
    attack = [asyncio.create_task(attacker.post("/api/auth/login", json=guess))]
    await wait_until(lambda: hasher.running == 1, "the forged guess hashes")
    attack += wrong_logins(app, clients, 1, "victim")
    state = app.services.returning
    try:
        await wait_until(lambda: hasher.waiting == 1, "attack fills line")
        assert state.in_flight == 0
        r = await clients(app, "203.0.113.26").post("/api/auth/login", json=guess)
        assert_problem(r, 503)
        assert not any(t.done() for t in attack)
    finally:
        argon.gate.set()
    assert Counter(t.status_code for t in await asyncio.gather(*attack)) == {401: 2}


def _body(email: str) -> dict[str, str]:
    return {"email": email, "password": PASSWORD}


async def test_a_flood_over_the_global_limit_is_logged_once_per_client_and_window(
    start_guarded: StartApp, clients: Clients
) -> None:
    """Attacker: keeps sending past the global limit so that every refusal writes a log
    line and a stored event (a flood of the logs and the database, and CPU). Defence:
    the first refusal of each client's window is logged; the rest are counted."""
    app = await start_guarded(rate_limit_global="3/minute")
    events = record_events(app)
    flooder, other = clients(app, "203.0.113.20"), clients(app, "203.0.113.21")
    for client in (flooder, other):
        statuses = [(await client.get("/api/products")).status_code for _ in range(40)]
        assert statuses == [200] * 3 + [429] * 37
    exceeded = [e for e in events if e["event"] == "ratelimit.exceeded"]
    assert [(e["ip"], e["reason"]) for e in exceeded] == [
        ("203.0.113.20", "global limit"),
        ("203.0.113.21", "global limit"),
    ]


async def test_a_client_over_its_budget_is_refused_without_a_store_round_trip(
    start_guarded: StartApp, clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attacker: keeps flooding past the limit so that every refusal costs a store round
    trip. Defence: a client over its budget stays over until its window ends (fixed
    windows, no slot ever given back), so the process refuses it from memory, and
    serves it again as soon as the window is over."""
    app = await start_guarded(rate_limit_global="2/second")
    store = app.services.store
    calls: list[str] = []
    count_calls(monkeypatch, store, "hit", calls)
    client = clients(app, "203.0.113.30")
    statuses = [(await client.get("/api/products")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert len(calls) == 3
    refused = [await client.get("/api/products") for _ in range(20)]
    assert {r.status_code for r in refused} == {429}
    assert len(calls) == 3  # refused from memory
    assert all(ratelimit_fields(r.headers)["global"]["r"] == 0 for r in refused)
    assert all(int(r.headers["retry-after"]) in (1, 2) for r in refused)
    # Another client is untouched, and the flooder is served again once its window ends.
    assert (await clients(app, "203.0.113.31").get("/api/products")).status_code == 200
    await asyncio.sleep(1.2)
    assert (await client.get("/api/products")).status_code == 200

"""Input: strict validation against the schema, injection probes, size and depth limits."""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import httpx

from bastion.audit.checks.authz import _create
from bastion.audit.context import CheckContext, TestAccount, fill
from bastion.audit.ratelimits import wrong_password
from bastion.audit.registry import check
from bastion.audit.verdicts import Inconclusive

# Text a database or driver puts in its errors: it must never reach a client.
DATABASE_ERRORS = re.compile(
    r"SQLSTATE|syntax error|sqlite|psycopg|asyncpg|PG::|mysql|MariaDB|ORA-\d{5}|SQL Server"
    r"|unterminated quoted string|near \"|MongoError|MongoServerError|CastError|\$where"
    r"|BSON|E11000|QueryFailedError|SequelizeDatabaseError|PrismaClient",
    re.IGNORECASE,
)
SQL_PROBES = ("'", "' OR '1'='1", "' OR '1'='1' --", "1 OR 1=1", '" OR ""="', "'; SELECT 1; --")
NOSQL_PROBES: tuple[Any, ...] = ({"$ne": None}, {"$gt": ""}, {"$regex": ".*"}, {"$where": "1"})


def _leaks(response: httpx.Response) -> str | None:
    found = DATABASE_ERRORS.search(response.text)
    return found.group(0) if found else None


@check(
    "input.injection",
    title="SQL and NoSQL probes get a 4xx: no 5xx, no database error, no extra data",
    owasp="API8:2023",
    asvs="V1.2.4",
    guide="Parameterised queries only; validate types so that an object is never a string",
    fix="Use parameterised queries (never string building) and validate every input's type "
    "(a JSON object where a string is expected is a 400); map database errors to a generic 500.",
    max_requests=45,
)
async def input_injection(ctx: CheckContext) -> str:
    browser, account, token = await ctx.signed_in()
    login = ctx.profile.auth.login
    problems: list[str] = []

    def judge(what: str, answer: httpx.Response) -> None:
        ctx.not_limited(answer, what)
        if answer.status_code >= 500:
            problems.append(f"{what}: a {answer.status_code}")
        elif 200 <= answer.status_code < 300:
            problems.append(f"{what}: accepted ({answer.status_code})")
        leak = _leaks(answer)
        if leak:
            problems.append(f"{what}: the answer shows {leak!r}")

    # A password probe is a failed login for a real account: a fresh account for every
    # few of them keeps its lockout from answering instead of the login.
    per_account = max(1, ctx.profile.limits.lockout_rate.count - 1)
    target = account
    for n, probe in enumerate((*SQL_PROBES, *NOSQL_PROBES)):
        if n and n % per_account == 0:
            target = await ctx.new_account()
        for field in ("email", "password"):
            body = fill(
                login.body, ctx.variables(TestAccount(target.email, wrong_password(), True))
            )
            if isinstance(body, dict):
                body = {**body, field: probe}
            guesser = ctx.browser("injector")
            answer = await guesser.request(
                login.method, login.path, json=body, note=f"login {field}={probe!r}"
            )
            judge(f"login with {field} {probe!r}", answer)
    if ctx.profile.has("objects"):
        _, object_id = await _create(ctx, browser, token)
        read = next((op for op in ctx.profile.objects.operations if op.method == "GET"), None)
        if read is not None:
            control = await ctx.call(
                browser, read, token=token, id=object_id, note="the owner reads it"
            )
            ctx.control(
                control.status_code == 200, f"the owner's read answered {control.status_code}"
            )
            for probe in SQL_PROBES[:4]:
                path = fill(read.path, {"id": quote(f"{object_id}{probe}", safe="")})
                answer = await browser.request(read.method, path, token=token, note=f"id {probe!r}")
                judge(f"an id with {probe!r}", answer)
        listing = ctx.profile.objects.listing
        for param in ("cursor", "limit"):
            path = f"{listing.path}?{param}={quote(SQL_PROBES[2], safe='')}"
            answer = await browser.request(listing.method, path, token=token, note=f"{param} probe")
            if answer.status_code >= 500 or _leaks(answer):
                judge(f"the list's {param} with a probe", answer)
    ctx.expect(not problems, "; ".join(problems[:6]))
    return f"{len(SQL_PROBES) + len(NOSQL_PROBES)} probes in each login field and in ids: 4xx only"


def _leaves(
    value: Any, schema: dict[str, Any] | None, ctx: CheckContext, where: tuple[Any, ...] = ()
) -> Iterator[tuple[tuple[Any, ...], Any, dict[str, Any]]]:
    """Every scalar of a valid body, with its path and its schema (empty if unknown)."""
    openapi = ctx.state.openapi
    schema = openapi.resolve(schema) if openapi is not None and schema else (schema or {})
    if isinstance(value, dict):
        found = schema.get("properties")
        props: dict[str, Any] = found if isinstance(found, dict) else {}
        for key, item in value.items():
            yield from _leaves(item, props.get(key), ctx, (*where, key))
    elif isinstance(value, list):
        items = schema.get("items") if isinstance(schema.get("items"), dict) else None
        for i, item in enumerate(value[:1]):
            yield from _leaves(item, items, ctx, (*where, i))
    else:
        yield where, value, schema


def _objects(value: Any, where: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        yield where
        for key, item in value.items():
            yield from _objects(item, (*where, key))
    elif isinstance(value, list):
        for i, item in enumerate(value[:1]):
            yield from _objects(item, (*where, i))


def _with(body: Any, where: tuple[Any, ...], value: Any) -> Any:
    changed = copy.deepcopy(body)
    target = changed
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = value
    return changed


def _probes(ctx: CheckContext, body: Any, schema: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """Invalid variants of a valid body: wrong types, unknown fields, out of bounds."""
    out: list[tuple[str, Any]] = []
    for where, value, leaf in _leaves(body, schema, ctx):
        name = "/".join(str(p) for p in where)
        kind = leaf.get("type")
        if kind == "integer" or (
            not kind and isinstance(value, int) and not isinstance(value, bool)
        ):
            out += [
                (f"{name} as the string '1'", _with(body, where, "1")),
                (f"{name} = 1.5", _with(body, where, 1.5)),
                (f"{name} = true", _with(body, where, True)),
            ]
            if "maximum" in leaf:
                out.append(
                    (f"{name} over its maximum", _with(body, where, int(leaf["maximum"]) + 1))
                )
            if "minimum" in leaf:
                out.append(
                    (f"{name} under its minimum", _with(body, where, int(leaf["minimum"]) - 1))
                )
        elif kind == "string" or isinstance(value, str):
            out.append((f"{name} as a number", _with(body, where, 12345)))
            if "maxLength" in leaf:
                out.append(
                    (
                        f"{name} over maxLength",
                        _with(body, where, "x" * (int(leaf["maxLength"]) + 1)),
                    )
                )
            if int(leaf.get("minLength", 0)) > 1:
                padded = "  " + "x" * (int(leaf["minLength"]) - 1) + "  "
                out.append((f"{name} under minLength once trimmed", _with(body, where, padded)))
            if "enum" in leaf:
                out.append((f"{name} outside its enum", _with(body, where, "not-one-of-them")))
    for where in _objects(body):
        label = "/".join(str(p) for p in where) or "the body"
        out.append(
            (
                f"an unknown field in {label}",
                _with(body, (*where, "auditUnknownField"), 1)
                if where
                else {**body, "auditUnknownField": 1},
            )
        )
    return out


@check(
    "input.validation",
    title="Bodies are validated strictly: types, bounds, lengths, unknown fields",
    owasp="API8:2023",
    asvs="V2.2.1",
    guide="Validate every body with a strict schema (Joi/Zod); never coerce types",
    fix="Validate request bodies strictly: no type coercion ('1', 1.5 and true are not "
    "integers), bounds and lengths after trimming, unknown fields refused with 400.",
    max_requests=40,
)
async def input_validation(ctx: CheckContext) -> str:
    ctx.require("objects")
    browser, account, token = await ctx.signed_in()
    await _create(ctx, browser, token)  # the control: the valid body is accepted
    create = ctx.profile.objects.create
    body = fill(create.body, ctx.variables(account))
    schema = (
        ctx.state.openapi.request_schema(create.method, create.path) if ctx.state.openapi else None
    )
    probes = _probes(ctx, body, schema)[:34]
    accepted = []
    for what, probe in probes:
        answer = await browser.request(
            create.method, create.path, json=probe, token=token, note=what
        )
        ctx.not_limited(answer, "sending an invalid body")
        if answer.status_code < 400 or answer.status_code >= 500:
            accepted.append(f"{what} ({answer.status_code})")
    ctx.expect(not accepted, "not refused: " + "; ".join(accepted[:8]))
    source = "its OpenAPI schema" if schema else "the valid body's own types (no OpenAPI schema)"
    return f"{len(probes)} invalid bodies derived from {source} refused with 4xx"


async def _chunks(data: bytes, size: int = 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@check(
    "resources.limits",
    title="Oversized bodies, deep nesting and huge pages are refused",
    owasp="API4:2023",
    asvs="V15.2.2",
    guide="express.json({ limit: '10kb' }); cap page sizes",
    fix="Refuse bodies over the limit with 413 before parsing (chunked ones too), limit JSON "
    "nesting, and refuse or cap page sizes (limit=1000000).",
    max_requests=10,
)
async def resources_limits(ctx: CheckContext) -> str:
    limit = ctx.profile.limits.max_body_bytes
    login = ctx.profile.auth.login
    browser = ctx.browser()
    headers = {"Content-Type": "application/json"}

    def padded(size: int) -> bytes:
        head, tail = b'{"email": "audit@example.com", "password": "', b'"}'
        return head + b"x" * (size - len(head) - len(tail)) + tail

    control = await browser.request(
        login.method,
        login.path,
        content=padded(limit - 64),
        headers=headers,
        note="just under the limit",
    )
    ctx.not_limited(control, "a body under the limit")
    ctx.control(control.status_code != 413, "a body under the limit got 413")
    problems = []
    over = await browser.request(
        login.method,
        login.path,
        content=padded(limit + 1),
        headers=headers,
        note=f"{limit + 1} bytes",
    )
    if over.status_code != 413:
        problems.append(f"a body of {limit + 1} bytes answered {over.status_code}, not 413")
    try:
        chunked = await browser.request(
            login.method,
            login.path,
            content=_chunks(padded(limit * 2)),
            headers=headers,
            note="chunked, twice the limit",
        )
        status: int | None = chunked.status_code
    except Inconclusive:
        # The server answered (413) and closed the connection while the body was still
        # going out: a refusal, if the server is still there to answer the next request.
        status = None
        after = await ctx.browser().request(
            login.method,
            login.path,
            content=b"{}",
            headers=headers,
            note="the server still answers",
        )
        ctx.control(
            after.status_code < 500,
            f"after the chunked body the server answered {after.status_code}",
        )
        ctx.note("the connection was closed while the chunked body was sent: refused unread")
    if status is not None and status != 413:
        problems.append(f"a chunked body of {limit * 2} bytes answered {status}, not 413")
    depth = max(1, min(2000, (limit - 100) // 2))
    deep = b'{"email": ' + b"[" * depth + b"]" * depth + b', "password": "x"}'
    nested = await browser.request(
        login.method, login.path, content=deep, headers=headers, note=f"JSON {depth} levels deep"
    )
    if nested.status_code < 400 or nested.status_code >= 500:
        problems.append(f"JSON nested {depth} levels deep answered {nested.status_code}")
    pages = [p for p in (ctx.profile.fixtures.get("product_id"),) if p is not None]
    for fixture in pages:
        huge = await browser.request("GET", f"{fixture.path}?limit=1000000", note="limit=1000000")
        ctx.not_limited(huge, "a page")
        if huge.status_code == 200:
            try:
                items = huge.json().get("items", [])
            except (ValueError, AttributeError):
                items = []
            if len(items) > ctx.profile.limits.page_limit:
                problems.append(f"limit=1000000 returned {len(items)} items")
        elif huge.status_code >= 500:
            problems.append(f"limit=1000000 answered {huge.status_code}")
    ctx.expect(not problems, "; ".join(problems))
    return f"413 over {limit} bytes (chunked too), deep JSON refused, huge pages refused or capped"

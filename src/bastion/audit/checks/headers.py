"""Response headers (helmet's set, CSP, HSTS, software names) and error bodies."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

import httpx

from bastion.audit.context import CheckContext
from bastion.audit.registry import check

# helmet's defaults (helmet 7/8), by header: a predicate on the value, and what it must be.
HELMET: dict[str, tuple[Callable[[str], bool], str]] = {
    "x-content-type-options": (lambda v: v.lower() == "nosniff", "nosniff"),
    "referrer-policy": (lambda v: bool(v), "a policy (no-referrer)"),
    "cross-origin-opener-policy": (lambda v: bool(v), "same-origin"),
    "cross-origin-resource-policy": (lambda v: bool(v), "same-origin"),
    "origin-agent-cluster": (lambda v: v == "?1", "?1"),
    "x-dns-prefetch-control": (lambda v: v.lower() == "off", "off"),
    "x-download-options": (lambda v: v.lower() == "noopen", "noopen"),
    "x-permitted-cross-domain-policies": (lambda v: v.lower() == "none", "none"),
    "x-xss-protection": (lambda v: v == "0", "0"),
}
YEAR = 31536000
_NONCE = re.compile(r"'nonce-([A-Za-z0-9+/_=-]+)'")
_VERSIONED = re.compile(r"\d|/")


def _directives(csp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out.setdefault(words[0].lower(), words[1:])
    return out


def _nonce_bits(nonce: str) -> int:
    try:
        padded = nonce + "=" * (-len(nonce) % 4)
        return 8 * len(base64.b64decode(padded.replace("-", "+").replace("_", "/")))
    except ValueError:
        return 0


def _header_problems(response: httpx.Response) -> list[str]:
    headers = response.headers
    problems = []
    for name, (good, expected) in HELMET.items():
        value = headers.get(name)
        if value is None or not good(value):
            problems.append(f"{name} is {value!r}, expected {expected}")
    hsts = headers.get("strict-transport-security", "")
    age = re.search(r"max-age=(\d+)", hsts)
    if age is None or int(age.group(1)) < YEAR:
        problems.append(f"HSTS {hsts!r} is shorter than a year")
    csp = headers.get("content-security-policy")
    if not csp:
        problems.append("no Content-Security-Policy")
    else:
        directives = _directives(csp)
        scripts = directives.get("script-src", directives.get("default-src"))
        if scripts is None:
            problems.append("the CSP does not restrict scripts")
        elif "'unsafe-inline'" in scripts or "*" in scripts:
            problems.append("the CSP allows inline or any scripts")
        if "frame-ancestors" not in directives and "x-frame-options" not in headers:
            problems.append("framing is not restricted (no frame-ancestors, no X-Frame-Options)")
    if "x-powered-by" in headers:
        problems.append(f"X-Powered-By: {headers['x-powered-by']}")
    server = headers.get("server")
    if server is not None and _VERSIONED.search(server):
        problems.append(f"Server names a version: {server}")
    return problems


@check(
    "headers.security",
    title="helmet's security headers, a strict CSP with fresh nonces, a year of HSTS",
    owasp="API8:2023",
    asvs="V3.4.1",
    guide="app.use(helmet()) with a CSP and HSTS; remove X-Powered-By",
    fix="Send helmet's header set on every response: a CSP without 'unsafe-inline' scripts "
    "(nonces of 128 bits, fresh per response), HSTS max-age >= 31536000, and no X-Powered-By "
    "or versioned Server header.",
    max_requests=8,
)
async def headers_security(ctx: CheckContext) -> str:
    browser = ctx.browser()
    paths = [*ctx.profile.pages, ctx.profile.auth.me.path]
    problems: list[str] = []
    nonces: list[str] = []
    for path in paths:
        for _ in range(2):  # twice: a nonce must change between responses
            response = await browser.request("GET", path)
            ctx.not_limited(response, "fetching a page")
            ctx.control(response.status_code < 500, f"GET {path} answered {response.status_code}")
            nonces += _NONCE.findall(response.headers.get("content-security-policy", ""))
        found = _header_problems(response)
        ctx.note(f"GET {path}: {len(found)} header problem(s)")
        problems += [f"{path}: {p}" for p in found]
    if nonces:
        if len(set(nonces)) < len(nonces):
            problems.append("a CSP nonce was sent twice")
        weak = [n for n in nonces if _nonce_bits(n) < 128]
        if weak:
            problems.append(f"a CSP nonce has {_nonce_bits(weak[0])} bits, under 128")
    ctx.expect(not problems, "; ".join(problems[:6]))
    fresh = f", {len(nonces)} fresh nonces of 128+ bits" if nonces else ""
    return f"helmet's headers, a strict CSP and a year of HSTS on {', '.join(paths)}{fresh}"


_LEAKS = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+|\bat [\w.<>]+ \([^)]*:\d+:\d+\)"
    r"|SQLSTATE|sqlite3?\.|psycopg|asyncpg|SQLAlchemy|syntax error at or near|ORA-\d{5}"
    r"|MongoError|Mongoose|CastError|ValidationError:|Prisma|node_modules|\bExpress\b"
    r"|\bStarlette\b|\bFastAPI\b|\bpydantic\b|\buvicorn\b|\bDjango\b|\bWerkzeug\b"
    r"|java\.lang\.|at org\.|Exception in thread",
)


def _problem(response: httpx.Response) -> list[str]:
    problems = []
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/problem+json":
        problems.append(f"Content-Type {media or '(none)'}")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        problems.append("the body is not a JSON object")
    else:
        missing = [k for k in ("type", "title", "status") if k not in body]
        if missing:
            problems.append(f"no {', '.join(missing)}")
        elif body["status"] != response.status_code:
            problems.append(f"status {body['status']!r} in a {response.status_code}")
    # The body only: a Server header naming software is headers.security's to judge.
    leak = _LEAKS.search(response.text)
    if leak:
        problems.append(f"it leaks {leak.group(0)!r}")
    return problems


@check(
    "errors.problem-details",
    title="Errors are RFC 9457 problem details that leak nothing",
    owasp="API8:2023",
    asvs="V16.5.1",
    guide="A central error handler: generic messages, no stack traces in production",
    fix="Answer every error with application/problem+json {type, title, status, detail} "
    "from one error handler; never send stack traces, SQL or framework names.",
    max_requests=6,
)
async def errors_problem_details(ctx: CheckContext) -> str:
    browser = ctx.browser()
    login = ctx.profile.auth.login
    probes = [
        ("an unknown route", "GET", "/api/bastion-audit-no-such-route", None, {}),
        ("no credentials", ctx.profile.auth.me.method, ctx.profile.auth.me.path, None, {}),
        (
            "malformed JSON",
            login.method,
            login.path,
            b'{"email": ',
            {"Content-Type": "application/json"},
        ),
        (
            "a body that is not JSON",
            login.method,
            login.path,
            b"email=a",
            {"Content-Type": "text/plain"},
        ),
        (
            "a JSON array",
            login.method,
            login.path,
            b"[1, 2, 3]",
            {"Content-Type": "application/json"},
        ),
    ]
    problems = []
    errors = 0
    for what, method, path, content, headers in probes:
        response = await browser.request(method, path, content=content, headers=headers, note=what)
        ctx.not_limited(response, what)
        if response.status_code < 400:
            ctx.note(f"{what}: {response.status_code}, not an error")
            continue
        errors += 1
        if response.status_code >= 500:
            problems.append(f"{what}: a {response.status_code}")
        problems += [f"{what}: {p}" for p in _problem(response)]
    ctx.control(errors >= 3, f"only {errors} of {len(probes)} probes were errors")
    ctx.expect(not problems, "; ".join(problems[:6]))
    return f"{errors} errors, each application/problem+json with type, title and status"

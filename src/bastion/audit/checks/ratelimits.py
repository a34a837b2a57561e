"""Per-client limits: global, on failed authentication, under a burst, and whether a
client can reset its budget with a forwarding header."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Awaitable, Callable

import httpx

from bastion.audit.client import Browser
from bastion.audit.context import CheckContext, fill
from bastion.audit.ratelimits import remaining, retry_after_ok, unknown_email, wrong_password
from bastion.audit.registry import check
from bastion.audit.verdicts import Failed, Inconclusive

# Room past the promised limit before the checks call a limit missing.
SLACK = 3


async def _failed_login(
    ctx: CheckContext, browser: Browser, note: str, **headers: str
) -> httpx.Response:
    op = ctx.profile.auth.login
    body = {"email": unknown_email(), "password": wrong_password()}
    filled = ctx.variables(None)
    filled.update(body)
    return await browser.request(
        op.method, fill(op.path, filled), json=fill(op.body, filled), headers=headers, note=note
    )


async def _until_refused(
    ctx: CheckContext, send: Callable[[], Awaitable[httpx.Response]], most: int
) -> tuple[int, httpx.Response | None]:
    """Send (``send()``) until a 429, at most ``most`` times: the answers before the 429,
    and the 429 (None if none came)."""
    for sent in range(most):
        response = await send()
        if response.status_code == 429:
            return sent, response
        ctx.control(response.status_code < 500, f"an attempt answered {response.status_code}")
    return most, None


@check(
    "ratelimit.global",
    title="A per-client limit on the API, refused with 429 and Retry-After",
    owasp="API4:2023",
    asvs="V2.4.1",
    guide="express-rate-limit: 100 requests per 15 minutes per IP on /api/",
    fix="Limit each client (100 requests per 15 minutes per IP on /api/*); answer 429 with "
    "Retry-After and RateLimit header fields that count down truthfully.",
    max_requests=100 + 2 * SLACK + 10,
    max_seconds=40,
)
async def ratelimit_global(ctx: CheckContext) -> str:
    limit = ctx.profile.limits.global_rate.count
    browser = ctx.browser()
    seen: list[int | None] = []
    style = "none"
    refused: httpx.Response | None = None
    for _ in range(limit + SLACK):
        response = await browser.request("GET", ctx.profile.auth.me.path, record=False)
        if response.status_code == 429:
            refused = response
            break
        ctx.control(response.status_code < 500, f"GET answered {response.status_code}")
        style, left = remaining(response.headers)
        seen.append(left)
    answered = len(seen)
    ctx.note(f"{answered} requests answered before {'a 429' if refused else 'the check stopped'}")
    ctx.note(f"RateLimit header fields: {style}")
    if refused is None:
        raise Failed(f"no limit: {answered} requests from one client, none refused")
    ctx.note(f"429 Retry-After: {refused.headers.get('retry-after', '(none)')}")
    problems = []
    if not retry_after_ok(refused):
        problems.append("the 429 has no valid Retry-After")
    counts = [n for n in seen if n is not None]
    if counts and len(counts) == len(seen):
        steps = [a - b for a, b in itertools.pairwise(counts)]
        if any(step != 1 for step in steps) or counts[-1] != 0:
            problems.append(
                f"the RateLimit fields do not count down truthfully ({counts[0]}..{counts[-1]} "
                f"over {answered} requests, then 429)"
            )
    ctx.expect(not problems, "; ".join(problems))
    counted = f", {style} fields counting down to 0" if counts else ", no RateLimit fields"
    return f"429 with Retry-After after {answered} requests (limit {limit}){counted}"


@check(
    "ratelimit.auth",
    title="Failed logins and registrations are limited per client; successes are not",
    owasp="API4:2023",
    asvs="V6.3.1",
    guide="A stricter limiter on /api/auth: 10 failed attempts per hour (skipSuccessfulRequests)",
    fix="Count failed logins and failed registrations per client (10 per hour) and answer "
    "429 past the limit; do not count successful logins.",
    max_requests=3 * (10 + SLACK) + 15,
    max_seconds=40,
)
async def ratelimit_auth(ctx: CheckContext) -> str:
    limit = ctx.profile.limits.auth_rate.count
    attacker = ctx.browser("attacker")
    judged, refused = await _until_refused(
        ctx, lambda: _failed_login(ctx, attacker, "a wrong password"), limit + SLACK
    )
    ctx.note(
        f"{judged} failed logins answered before {'a 429' if refused else 'the check stopped'}"
    )
    ctx.expect(refused is not None, f"{judged} failed logins from one client, none refused")
    problems = []
    if refused is not None and not retry_after_ok(refused):
        problems.append("the 429 has no valid Retry-After")
    if ctx.profile.has("auth.register"):
        prober = ctx.browser("prober")
        taken = await ctx.new_account(prober)
        register = ctx.profile.auth.registration
        judged, refused = await _until_refused(
            ctx,
            lambda: ctx.call(prober, register, account=taken, note="a taken email"),
            limit + SLACK,
        )
        if refused is None:
            problems.append(f"{judged} registrations of a taken email, none refused")
    user = ctx.browser("user")
    # A few successes per account, below its lockout, registered from elsewhere: only
    # this client's per-address budget can be what refuses one of them.
    per_account = max(1, ctx.profile.limits.lockout_rate.count - 1)
    registrar = ctx.browser("registrar")
    accounts = [await ctx.new_account(registrar) for _ in range(-(-limit // per_account))]
    for n in range(limit):
        account = accounts[n // per_account]
        # Without cookies: a device cookie may rightly exempt a returning browser.
        user.cookies.clear()
        answer = await ctx.call(
            user, ctx.profile.auth.login, account=account, note="the right password"
        )
        if n == 0:
            ctx.not_limited(answer, "logging in")
            ctx.control(
                answer.status_code == 200, f"the right password answered {answer.status_code}"
            )
        elif answer.status_code == 429:
            problems.append(f"{n} successful logins spent the client's failed-attempt budget")
            break
    else:
        user.cookies.clear()
        after = await _failed_login(ctx, user, "a wrong password after the successes")
        if after.status_code == 429:
            problems.append(f"{limit} successful logins spent the client's failed-attempt budget")
    ctx.expect(not problems, "; ".join(problems))
    return f"failed logins limited to {limit} per client; successful logins not counted"


@check(
    "ratelimit.burst",
    title="A burst of parallel failed logins gets exactly the limit, not more",
    owasp="API4:2023",
    asvs="V6.3.1",
    guide="The limit must hold under concurrency (a shared, atomic store)",
    fix="Count attempts atomically (an INCR or a Lua script before the password is checked), "
    "never read-then-write, so parallel requests cannot overshoot the limit.",
    max_requests=2 * 10 + 10,
)
async def ratelimit_burst(ctx: CheckContext) -> str:
    limit = ctx.profile.limits.auth_rate.count
    sent = 2 * limit
    browser = ctx.browser("burst")
    answers = await asyncio.gather(
        *(_failed_login(ctx, browser, "in parallel") for _ in range(sent))
    )
    statuses = [a.status_code for a in answers]
    judged = sum(1 for s in statuses if s not in (429, 503) and s < 500)
    limited = statuses.count(429)
    ctx.note(
        f"{sent} parallel failed logins: {judged} judged, {limited} refused with 429, "
        f"{statuses.count(503)} shed with 503"
    )
    ctx.control(judged >= 1, "no attempt of the burst was judged")
    ctx.expect(
        judged <= limit, f"{judged} of {sent} parallel attempts were judged; the limit is {limit}"
    )
    ctx.control(limited >= 1, "no attempt was refused")
    return f"{judged} of {sent} parallel failed logins judged (limit {limit}), {limited} refused"


SPOOFS = ("X-Forwarded-For", "X-Real-IP", "Forwarded", "True-Client-IP", "CF-Connecting-IP")


def _spoof(header: str) -> dict[str, str]:
    address = f"198.51.100.{1 + secrets.randbelow(254)}"
    return {header: f"for={address}" if header == "Forwarded" else address}


@check(
    "client-ip.spoofing",
    title="Forwarding headers sent by the client do not reset its budget",
    owasp="API4:2023",
    asvs="V15.3.4",
    guide="app.set('trust proxy', ...) only for your own proxies",
    fix="Take the client address from the socket, or from X-Forwarded-For only when the "
    "peer is one of your proxies (and then its right-most untrusted entry).",
    max_requests=100 + 2 * 10 + 3 * SLACK + 10,
    max_seconds=40,
)
async def client_ip_spoofing(ctx: CheckContext) -> str:
    limit = ctx.profile.limits.auth_rate.count
    browser = ctx.browser("spoofer")
    _, refused = await _until_refused(
        ctx, lambda: _failed_login(ctx, browser, "a wrong password"), limit + SLACK
    )
    budget = "failed-login"

    async def probe(headers: dict[str, str]) -> httpx.Response:
        return await _failed_login(ctx, browser, f"with {', '.join(headers)}", **headers)

    if refused is None:  # no auth limit: spend the global one instead
        budget = "global"
        global_limit = ctx.profile.limits.global_rate.count
        _, refused = await _until_refused(
            ctx,
            lambda: browser.request("GET", ctx.profile.auth.me.path, record=False),
            global_limit + SLACK,
        )

        async def probe(headers: dict[str, str]) -> httpx.Response:
            return await browser.request(
                "GET", ctx.profile.auth.me.path, headers=headers, note=f"with {', '.join(headers)}"
            )

    if refused is None:
        raise Inconclusive("the target limits nothing per client: no budget to reset")
    reset = []
    for header in SPOOFS:
        answer = await probe(_spoof(header))
        if answer.status_code != 429:
            reset.append(header)
    every = {k: v for h in SPOOFS for k, v in _spoof(h).items()}
    if (await probe(every)).status_code != 429:
        reset.append("all of them at once")
    ctx.expect(not reset, f"a spent {budget} budget was reset by {', '.join(reset)}")
    return f"after the {budget} budget was spent, none of {', '.join(SPOOFS)} reset it"

"""Account lockout: it exists, it cannot be dodged by rewriting the email, successes do
not feed it, and it cannot be used to lock a returning user out."""

from __future__ import annotations

import httpx

from bastion.audit.client import Browser
from bastion.audit.context import CheckContext, TestAccount
from bastion.audit.ratelimits import unknown_email, wrong_password
from bastion.audit.registry import check

GUIDE = "Lock an account for 15 minutes after 5 failed logins, whoever sends them"


async def _try(
    ctx: CheckContext, email: str, password: str, note: str, browser: Browser | None = None
) -> httpx.Response:
    """One login attempt, from a fresh client (its own address, no cookies) by default:
    the per-client limit is never what answers."""
    browser = browser or ctx.browser("guess")
    return await ctx.call(
        browser, ctx.profile.auth.login, account=TestAccount(email, password, False), note=note
    )


async def _fail(
    ctx: CheckContext, email: str, times: int, note: str = "a wrong password"
) -> list[int]:
    return [(await _try(ctx, email, wrong_password(), note)).status_code for _ in range(times)]


@check(
    "lockout.account",
    title="Failures for one account lock it, even against the right password",
    owasp="API2:2023",
    asvs="V6.3.1",
    guide=GUIDE,
    fix="Count failed logins per account (normalised email), from any address, and refuse "
    "further logins for a while once the limit is reached, unknown emails included.",
    max_requests=2 * 5 + 8,
    locks_accounts=True,
)
async def lockout_account(ctx: CheckContext) -> str:
    limit = ctx.profile.limits.lockout_rate.count
    browser = ctx.browser("owner")
    account = await ctx.new_account(browser)
    await ctx.login(browser, account, note="the control: the right password")
    statuses = await _fail(ctx, account.email, limit, "a wrong password, each from another address")
    # A 429 before the last is a lockout that came early (it counted the control's
    # success: lockout.successes judges that): the account is locked all the same.
    ctx.control(
        statuses[0] == 401 and all(s in (401, 429) for s in statuses),
        f"the wrong passwords answered {statuses}",
    )
    right = await _try(
        ctx, account.email, account.password, "the right password, after the failures"
    )
    ctx.expect(
        right.status_code != 200,
        f"after {limit} failures from {limit} addresses the right password still logs in",
    )
    nobody = unknown_email()
    await _fail(ctx, nobody, limit, "an unknown email")
    unknown = await _try(ctx, nobody, wrong_password(), "the unknown email once more")
    ctx.expect(
        unknown.status_code == right.status_code,
        f"a locked account answers {right.status_code}, a locked unknown email "
        f"{unknown.status_code}: the lockout tells which accounts exist",
    )
    return (
        f"locked after {limit} failures from {limit} addresses ({right.status_code}), "
        "unknown emails alike"
    )


def _variants(email: str) -> list[tuple[str, str]]:
    local, _, domain = email.partition("@")
    # NFKC folds the fullwidth letters (U+FF41...) to their ASCII letters.
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "a" <= c <= "z" else c for c in local)
    return [
        ("upper case", email.upper()),
        ("surrounding spaces", f"  {email}\t"),
        ("fullwidth letters (NFKC)", f"{fullwidth}@{domain}"),
        ("mixed case", local.capitalize() + "@" + domain.upper()),
        ("upper case and spaces", f" {email.upper()} "),
    ]


@check(
    "lockout.normalisation",
    title="Case, whitespace and Unicode variants of an email share one lockout",
    owasp="API2:2023",
    asvs="V6.3.1",
    guide=GUIDE,
    fix="Normalise the email (trim, Unicode NFKC, lower-case) before counting failures and "
    "before looking the account up.",
    max_requests=4 * 5 + 6,
    locks_accounts=True,
)
async def lockout_normalisation(ctx: CheckContext) -> str:
    limit = ctx.profile.limits.lockout_rate.count
    browser = ctx.browser("owner")
    account = await ctx.new_account(browser)
    await ctx.login(browser, account, note="the control: the right password")
    guesses = 0
    used = []
    variants = _variants(account.email)
    for i in range(3 * limit):  # a variant the target refuses (400) is no guess: skip it
        if guesses == limit:
            break
        what, email = variants[i % len(variants)]
        answer = await _try(ctx, email, wrong_password(), f"wrong password, {what}")
        if answer.status_code == 429 and guesses:
            break  # the variants locked the account before the limit: one count for all
        if answer.status_code == 401:
            guesses += 1
            used.append(what)
    ctx.control(
        guesses == limit or (guesses > 0 and answer.status_code == 429),
        f"only {guesses} of the variants were taken as login attempts",
    )
    right = await _try(ctx, account.email, account.password, "the right password, as registered")
    ctx.expect(
        right.status_code != 200,
        f"{limit} failures with variants of the email ({', '.join(sorted(set(used)))}) did "
        "not lock the account",
    )
    return f"{guesses} failures spread over {len(set(used))} variants of the email locked it"


@check(
    "lockout.successes",
    title="Successful logins do not count toward the lockout",
    owasp="API2:2023",
    asvs="V6.3.1",
    guide=GUIDE,
    fix="Reset (or at least do not increase) an account's failure count on a successful login.",
    max_requests=2 * 5 + 4,
)
async def lockout_successes(ctx: CheckContext) -> str:
    limit = ctx.profile.limits.lockout_rate.count
    browser = ctx.browser("owner")
    account = await ctx.new_account(browser)
    first = await _fail(ctx, account.email, limit - 1, "round 1: a wrong password")
    ctx.control(all(s == 401 for s in first), f"the wrong passwords answered {first}")
    right = await _try(ctx, account.email, account.password, "round 1: the right password")
    ctx.not_limited(right, "logging in")
    ctx.control(right.status_code == 200, f"the right password answered {right.status_code}")
    second = await _fail(ctx, account.email, limit - 1, "round 2: a wrong password")
    right = await _try(ctx, account.email, account.password, "round 2: the right password")
    locked = [s for s in [*second, right.status_code] if s != 401 and s != 200]
    ctx.expect(
        not locked and right.status_code == 200,
        f"{limit - 1} failures, a success and {limit - 1} failures locked the account "
        f"({[*second, right.status_code]}): the success did not reset the count",
    )
    return f"twice {limit - 1} failures with a success between did not lock the account"


@check(
    "lockout.denial-of-service",
    title="A returning browser can log in while someone else locks the account",
    owasp="API2:2023",
    asvs="V6.3.1",
    guide=GUIDE + "; do not let the lockout become a way to lock real users out",
    fix="Give each browser that logged in a signed device cookie (OWASP device cookies); "
    "a login carrying a valid one is not refused for failures made elsewhere.",
    max_requests=5 + 8,
    locks_accounts=True,
)
async def lockout_denial_of_service(ctx: CheckContext) -> str:
    limit = ctx.profile.limits.lockout_rate.count
    victim = ctx.browser("victim")
    account = await ctx.new_account(victim)
    await ctx.login(victim, account, note="the victim logs in (and keeps its cookies)")
    statuses = await _fail(ctx, account.email, limit + 1, "the attacker, a wrong password")
    ctx.control(429 in statuses or 423 in statuses, f"the account did not lock ({statuses})")
    locked = await _try(ctx, account.email, account.password, "a new browser, the right password")
    ctx.control(locked.status_code != 200, "the account did not lock against a new browser")
    back = await ctx.call(victim, ctx.profile.auth.login, account=account, note="the victim again")
    ctx.expect(
        back.status_code == 200,
        f"the victim's own browser is locked out too ({back.status_code}): anyone can lock "
        "any user out by failing their logins",
    )
    return "the account locked for new browsers while the victim's browser still logged in"

"""What the login and registration answers give away, and the password policy."""

from __future__ import annotations

import secrets
import statistics
import time
from typing import Any

import httpx

from bastion.audit.checks.lockout import _try
from bastion.audit.context import CheckContext, TestAccount
from bastion.audit.ratelimits import unknown_email, wrong_password
from bastion.audit.registry import check

# Attempts timed for each kind of account.
SAMPLES = 7
# Medians this far apart, and one at least twice the other, tell the two apart. The
# absolute floor is above the jitter of a median of 7 loopback requests (a few ms on a
# busy machine) and below the cost of any password hash OWASP accepts (Argon2id at
# 19 MiB and t=2, or bcrypt at cost 10: tens of ms); the ratio keeps a slow server's
# noise from passing for a difference. A target that skips the hash for unknown
# emails answers them in a fraction of the time of a real verification.
TIMING_FLOOR = 0.010
TIMING_RATIO = 2.0
_VOLATILE = {
    "instance",
    "requestid",
    "request_id",
    "traceid",
    "trace_id",
    "timestamp",
    "time",
    "ts",
}


def _shape(response: httpx.Response) -> Any:
    """The answer without what legitimately differs per request (ids, times)."""
    try:
        body = response.json()
    except ValueError:
        return (response.status_code, response.text)
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k.lower() not in _VOLATILE}
    return (response.status_code, body)


async def _timed(ctx: CheckContext, email: str, note: str) -> tuple[float, httpx.Response]:
    begun = time.perf_counter()
    response = await _try(ctx, email, wrong_password(), note)
    return time.perf_counter() - begun, response


@check(
    "auth.enumeration",
    title="Login and lockout answers do not tell which accounts exist",
    owasp="API2:2023",
    asvs="V6.3.8",
    guide="Answer 'invalid email or password' for both, in the same time (a dummy hash)",
    fix="Give unknown emails the same status, body and time as a wrong password (verify "
    "against a dummy hash), and lock unknown emails out the same way.",
    max_requests=2 * SAMPLES + 2 * 5 + 10,
    max_seconds=40,
    locks_accounts=True,
)
async def auth_enumeration(ctx: CheckContext) -> str:
    lockout = ctx.profile.limits.lockout_rate.count
    per_account = max(1, lockout - 1)  # stay under the lockout while timing
    accounts: list[TestAccount] = []
    for _ in range(-(-SAMPLES // per_account)):
        accounts.append(await ctx.new_account())
    known_times: list[float] = []
    known_statuses: list[int] = []
    unknown_times: list[float] = []
    shapes: dict[str, set[str]] = {"known": set(), "unknown": set()}
    for i in range(SAMPLES):  # interleaved, so that drift in the target's load cancels
        seconds, answer = await _timed(
            ctx, accounts[i // per_account].email, "existing, wrong password"
        )
        ctx.not_limited(answer, "a failed login")
        known_times.append(seconds)
        known_statuses.append(answer.status_code)
        shapes["known"].add(repr(_shape(answer)))
        seconds, answer = await _timed(ctx, unknown_email(), "unknown email")
        ctx.not_limited(answer, "a failed login")
        unknown_times.append(seconds)
        shapes["unknown"].add(repr(_shape(answer)))
    ctx.control(
        all(status in (400, 401, 403) for status in known_statuses),
        f"a wrong password answered {sorted(set(known_statuses))}",
    )
    problems = []
    if shapes["known"] != shapes["unknown"]:
        problems.append(
            f"a wrong password answers {sorted(shapes['known'])[0]}, an unknown email "
            f"{sorted(shapes['unknown'])[0]}"
        )
    known, unknown = statistics.median(known_times), statistics.median(unknown_times)
    ctx.note(f"median time: existing {known * 1000:.1f} ms, unknown {unknown * 1000:.1f} ms")
    slow, fast = max(known, unknown), min(known, unknown)
    if slow - fast > TIMING_FLOOR and slow > TIMING_RATIO * fast:
        problems.append(
            f"{'existing' if known > unknown else 'unknown'} accounts answer in "
            f"{slow * 1000:.0f} ms, the others in {fast * 1000:.0f} ms (medians of {SAMPLES})"
        )
    # Locked out: a known and an unknown account answer alike too.
    victim = await ctx.new_account()
    nobody = unknown_email()
    locked = {}
    for name, email in (("known", victim.email), ("unknown", nobody)):
        for _ in range(lockout):
            await _try(ctx, email, wrong_password(), f"{name}: locking it")
        locked[name] = _shape(await _try(ctx, email, wrong_password(), f"{name}: once locked"))
    if locked["known"] != locked["unknown"]:
        problems.append(
            f"locked out, an existing account answers {locked['known']}, an "
            f"unknown one {locked['unknown']}"
        )
    ctx.expect(not problems, "; ".join(problems))
    return (
        f"same status and body for existing and unknown accounts, locked or not; medians "
        f"{known * 1000:.1f} and {unknown * 1000:.1f} ms"
    )


def _common() -> list[str]:
    return ["password1234", "qwertyuiop123", "123456789012"]


@check(
    "passwords.policy",
    title="Short, over-long and common passwords are refused at registration",
    owasp="API2:2023",
    asvs="V6.2.4",
    guide="At least 12 characters, checked against a list of common passwords",
    fix="Refuse passwords under 12 or over 128 characters and those in a common-password "
    "list (or of low zxcvbn score), with 400 naming the field.",
    max_requests=10,
)
async def passwords_policy(ctx: CheckContext) -> str:
    ctx.require("auth.register")
    limits = ctx.profile.limits
    control = await ctx.new_account()  # a strong password registers: the control
    ctx.note(f"the control account {control.email} registered with a strong password")
    probes = [
        (
            f"{limits.password_min_length - 1} characters",
            secrets.token_urlsafe(64)[: limits.password_min_length - 1],
        ),
        (
            f"{limits.password_max_length + 1} characters",
            "Aa1-" + secrets.token_urlsafe(200)[: limits.password_max_length - 3],
        ),
        *((f"the common password {p!r}", p) for p in _common()),
    ]
    accepted = []
    for what, password in probes:
        account = TestAccount(f"audit-{secrets.token_hex(6)}@example.com", password, True)
        answer = await ctx.call(
            ctx.browser("registrar"), ctx.profile.auth.registration, account=account, note=what
        )
        ctx.not_limited(answer, "registering")
        if answer.status_code < 300:
            accepted.append(what)
        elif answer.status_code >= 500:
            accepted.append(f"{what} (a {answer.status_code})")
    ctx.expect(not accepted, "registration accepted: " + ", ".join(accepted))
    return f"{len(probes)} weak passwords refused; a strong one registers"

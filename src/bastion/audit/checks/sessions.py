"""Refresh rotation, reuse detection, races, independent sessions, and ending them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx

from bastion.audit.client import Browser
from bastion.audit.context import CheckContext, TestAccount
from bastion.audit.registry import check
from bastion.audit.verdicts import Failed

# How long an ended session's access token may still work: the contract says within
# a second on every instance; a few seconds allow for a cache or a replica behind.
REVOCATION_GRACE = 5.0


async def _refresh(
    ctx: CheckContext, browser: Browser, cookie: str | None, note: str
) -> httpx.Response:
    """Refresh with ``cookie`` as the refresh cookie (None: no cookie at all)."""
    name = ctx.state.refresh_cookie or ctx.profile.auth.refresh_cookie or "refreshToken"
    op = ctx.profile.auth.refresh
    jar = {k: v for k, v in browser.cookies.items() if k != name}
    if cookie is not None:
        jar[name] = cookie
    response = await browser.request(op.method, op.path, cookies=jar, note=note)
    ctx.not_limited(response, "refreshing")
    return response


def _refresh_token(ctx: CheckContext, browser: Browser) -> str:
    name = ctx.present(ctx.refresh_cookie_name(browser), "the login answer sets no refresh cookie")
    return browser.cookies[name]


async def _refused_soon(ctx: CheckContext, browser: Browser, token: str, what: str) -> float | None:
    """None when ``token`` is refused within :data:`REVOCATION_GRACE` seconds, else the
    seconds it kept working."""
    loop = asyncio.get_running_loop()
    begun = loop.time()
    while True:
        status = await ctx.authorised_read(browser, token, what)
        if status in (401, 403):
            return None
        waited = loop.time() - begun
        if waited >= REVOCATION_GRACE:
            return waited
        await asyncio.sleep(0.5)


async def _second_login(ctx: CheckContext, account: TestAccount, label: str) -> tuple[Browser, str]:
    browser = ctx.browser(label)
    _, token = await ctx.login(browser, account)
    return browser, token


@check(
    "refresh.rotation",
    title="A refresh token works once; reusing one ends its session",
    owasp="API2:2023",
    asvs="V7.2.4",
    guide="Rotate refresh tokens on every use and revoke the whole family when a used one "
    "comes back",
    fix="Store the current refresh token id per session; on refresh swap it atomically; when "
    "an older token of the session is presented, revoke the session (or all of the user's).",
    max_requests=8,
)
async def refresh_rotation(ctx: CheckContext) -> str:
    ctx.require("auth.refresh")
    browser, _, _ = await ctx.signed_in()
    first = _refresh_token(ctx, browser)
    rotated = await _refresh(ctx, browser, first, "the fresh refresh token")
    ctx.control(rotated.status_code == 200, f"refresh answered {rotated.status_code}")
    second = _refresh_token(ctx, browser)
    ctx.mask(second)
    ctx.expect(second != first, "refresh answered 200 without rotating the refresh token")
    reused = await _refresh(ctx, browser, first, "the used refresh token again")
    ctx.expect(reused.status_code != 200, "a refresh token that was already used works again")
    after = await _refresh(ctx, browser, second, "the family's newest token, after the reuse")
    ctx.expect(
        after.status_code != 200,
        "reusing an old refresh token did not end its session: the newest token still works",
    )
    return "a used refresh token is refused, and its reuse ends the session"


RACERS = 20


@check(
    "refresh.race",
    title="Concurrent refreshes with one token: at most one wins",
    owasp="API2:2023",
    asvs="V7.2.4",
    guide="Rotation must be atomic (compare-and-set), never read then write",
    fix="Rotate with one atomic statement (UPDATE ... WHERE token_id = $old RETURNING) or a "
    "Lua script, so that only one of several concurrent refreshes can succeed.",
    max_requests=RACERS + 4,
)
async def refresh_race(ctx: CheckContext) -> str:
    ctx.require("auth.refresh")
    browser, _, _ = await ctx.signed_in()
    token = _refresh_token(ctx, browser)
    racers = [ctx.browser(f"racer{i}") for i in range(RACERS)]
    answers = await asyncio.gather(
        *(_refresh(ctx, r, token, "the same token, all at once") for r in racers)
    )
    won = sum(1 for a in answers if a.status_code == 200)
    ctx.note(f"{won} of {RACERS} concurrent refreshes answered 200")
    ctx.control(won >= 1, "no refresh succeeded: the token did not work at all")
    ctx.expect(won <= 1, f"{won} of {RACERS} concurrent refreshes with one token succeeded")
    return f"1 of {RACERS} concurrent refreshes with one token succeeded"


@check(
    "refresh.sessions-independent",
    title="Two logins are two sessions",
    owasp="API2:2023",
    asvs="V7.4.1",
    guide="Each device has its own token family",
    fix="Create a session (token family) per login; rotate and revoke by session, not by user.",
    max_requests=12,
)
async def refresh_sessions_independent(ctx: CheckContext) -> str:
    ctx.require("auth.refresh")
    ctx.require("auth.logout")
    laptop, account, _ = await ctx.signed_in("laptop")
    phone, phone_token = await _second_login(ctx, account, "phone")
    rotated = await _refresh(ctx, laptop, _refresh_token(ctx, laptop), "laptop rotates")
    ctx.control(rotated.status_code == 200, f"the laptop's refresh answered {rotated.status_code}")
    problems = []
    if await ctx.authorised_read(phone, phone_token, "the phone, after the laptop rotated") != 200:
        problems.append("rotating one session ended another's access token")
    kept = await _refresh(ctx, phone, _refresh_token(ctx, phone), "the phone rotates")
    if kept.status_code != 200:
        problems.append("rotating one session ended another's refresh token")
    phone_token = ctx.token_of(kept) or phone_token
    out = await ctx.call(laptop, ctx.profile.auth.logout, note="the laptop logs out")
    ctx.not_limited(out, "logging out")
    ctx.control(out.status_code in (200, 204), f"logout answered {out.status_code}")
    if (
        await ctx.authorised_read(phone, phone_token, "the phone, after the laptop logged out")
        != 200
    ):
        problems.append("logging one session out ended another's access token")
    still = await _refresh(ctx, phone, _refresh_token(ctx, phone), "the phone rotates again")
    if still.status_code != 200:
        problems.append("logging one session out ended another's refresh token")
    ctx.expect(not problems, "; ".join(problems))
    return "rotating or ending one session left the other working"


async def _ends_other_sessions(
    ctx: CheckContext,
    what: str,
    account: TestAccount,
    one: Browser,
    done: list[str],
    skipped: list[str],
    end: Callable[[], Awaitable[httpx.Response]],
) -> None:
    """``end()`` (logout-all, a password change) from device one must end device two's
    session: its refresh token and, within the grace, its access token. An operation
    the target does not have (404, 405) is skipped, not judged."""
    two, token_two = await _second_login(ctx, account, "device2")
    refresh_two = _refresh_token(ctx, two) if ctx.profile.has("auth.refresh") else None
    out = await end()
    ctx.not_limited(out, what)
    if out.status_code in (404, 405):
        skipped.append(what)
        return
    ctx.control(out.status_code in (200, 204), f"{what} answered {out.status_code}")
    if refresh_two is not None:
        again = await _refresh(ctx, two, refresh_two, "another device's refresh token")
        ctx.expect(again.status_code != 200, f"another device's refresh token survives {what}")
    lasted = await _refused_soon(ctx, two, token_two, "another device's access token")
    if lasted is not None:
        raise Failed(f"another device's access token works {lasted:.0f} s after {what}")
    done.append(what)


@check(
    "sessions.logout",
    title="Logout, logout-all and a password change end sessions at once",
    owasp="API2:2023",
    asvs="V7.4.1",
    guide="Logout revokes the refresh token; access tokens of revoked sessions are refused",
    fix="On logout revoke the session server-side and refuse its access tokens too (name the "
    "session in the token, check a revocation list); logout-all and a password change end "
    "every other session.",
    max_requests=70,
    max_seconds=40,
)
async def sessions_logout(ctx: CheckContext) -> str:
    ctx.require("auth.logout")
    done = []
    browser, account, token = await ctx.signed_in()
    refresh = _refresh_token(ctx, browser) if ctx.profile.has("auth.refresh") else None
    ctx.control(await ctx.authorised_read(browser, token, "before logout") == 200, "token refused")
    out = await ctx.call(browser, ctx.profile.auth.logout, note="logout")
    ctx.not_limited(out, "logging out")
    ctx.control(out.status_code in (200, 204), f"logout answered {out.status_code}")
    if refresh is not None:
        again = await _refresh(ctx, browser, refresh, "the refresh token after logout")
        ctx.expect(again.status_code != 200, "the refresh token still works after logout")
    lasted = await _refused_soon(ctx, browser, token, "the access token after logout")
    if lasted is not None:
        raise Failed(f"the access token still works {lasted:.0f} s after logout")
    done.append("logout")

    skipped: list[str] = []
    if ctx.profile.has("auth.logout_all"):
        one, account, token_one = await ctx.signed_in("device1")
        await _ends_other_sessions(
            ctx,
            "logout-all",
            account,
            one,
            done,
            skipped,
            lambda: ctx.call(one, ctx.profile.auth.logout_all, token=token_one, note="logout-all"),
        )

    if ctx.profile.has("auth.change_password") and ctx.profile.has("auth.register"):
        one, account, token_one = await ctx.signed_in("device1")
        new_password = ctx.new_password()
        await _ends_other_sessions(
            ctx,
            "password change",
            account,
            one,
            done,
            skipped,
            lambda: ctx.call(
                one,
                ctx.profile.auth.change_password,
                account=account,
                token=token_one,
                new_password=new_password,
                note="password change",
            ),
        )
    if skipped:
        ctx.note(f"not judged, the target answers 404 or 405: {', '.join(skipped)}")
    return f"tokens of ended sessions are refused at once after {', '.join(done)}"

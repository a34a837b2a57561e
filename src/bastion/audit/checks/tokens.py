"""Access and refresh tokens: signature, storage, lifetime, types, caching."""

from __future__ import annotations

import time

from bastion.audit.context import CheckContext
from bastion.audit.jwt_forgery import crack, decode_part, forgeries, is_jwt
from bastion.audit.registry import check
from bastion.audit.verdicts import Failed, Inconclusive


@check(
    "tokens.algorithm",
    title="Forged and re-signed access tokens are refused",
    owasp="API2:2023",
    asvs="V9.1.2",
    guide="Pin the algorithm when verifying (algorithms: ['HS256']); use a long random secret",
    fix="Verify with one pinned algorithm and the server's key only; ignore jku/jwk/x5u/kid "
    "paths; sign with a random secret of at least 32 bytes.",
    max_requests=30,
)
async def tokens_algorithm(ctx: CheckContext) -> str:
    browser, _, token = await ctx.signed_in()
    ctx.control(
        await ctx.authorised_read(browser, token, "the real token") == 200,
        "the real access token is not accepted",
    )
    if not is_jwt(token):
        raise Inconclusive("the access token is not a JWT; nothing to re-sign")
    secret = crack(token)
    if secret is not None:
        raise Failed(
            f"the token's HMAC secret is the common secret {secret!r}: anyone can forge it"
        )
    accepted = []
    for what, forged in forgeries(token):
        ctx.mask(forged)
        status = await ctx.authorised_read(browser, forged, what)
        if 200 <= status < 300:
            accepted.append(what)
    ctx.expect(not accepted, "accepted: " + "; ".join(accepted))
    return f"{len(forgeries(token))} forgeries refused; the secret is none of the common ones"


@check(
    "tokens.storage",
    title="Access token in the body only; refresh token in a strict HttpOnly cookie",
    owasp="API2:2023",
    asvs="V3.3.1",
    guide="Keep the access token in memory and the refresh token in an HttpOnly, Secure, "
    "SameSite=Strict cookie",
    fix="Send the access token in the JSON body only; set the refresh cookie with HttpOnly; "
    "Secure; SameSite=Strict; Path=<the refresh endpoint's prefix>.",
    max_requests=5,
)
async def tokens_storage(ctx: CheckContext) -> str:
    ctx.require("auth.refresh")
    browser = ctx.browser()
    account = await ctx.new_account(browser)
    response, token = await ctx.login(browser, account)
    from bastion.audit.client import parse_set_cookie

    cookies = parse_set_cookie(response)
    problems = [f"the access token is in the cookie {c.name}" for c in cookies if token in c.value]
    name = ctx.refresh_cookie_name(browser)
    body = response.text
    if name is None:
        raise Failed("the login answer sets no refresh cookie (is the refresh token in the body?)")
    refresh = next(c for c in cookies if c.name == name)
    ctx.note(
        f"refresh cookie attributes: {', '.join(sorted(refresh.attributes)) or 'none'}"
        f"; Path={refresh.attributes.get('path', '(none)')}"
        f"; SameSite={refresh.attributes.get('samesite', '(none)')}"
    )
    if not name.startswith(("__Secure-", "__Host-")):
        ctx.note(f"{name} has no __Secure- or __Host- prefix: an insecure origin could plant it")
    if refresh.value and refresh.value in body:
        problems.append("the refresh token is also in the body")
    for flag in ("httponly", "secure"):
        if flag not in refresh.attributes:
            problems.append(
                f"the refresh cookie is not {'HttpOnly' if flag == 'httponly' else 'Secure'}"
            )
    if refresh.attributes.get("samesite", "").lower() != "strict":
        problems.append("the refresh cookie is not SameSite=Strict")
    path = refresh.attributes.get("path", "/") or "/"
    if path.rstrip("/") == "":
        problems.append("the refresh cookie's Path is the whole site")
    ctx.expect(not problems, "; ".join(problems))
    return (
        f"access token in the body only; {name} is HttpOnly, Secure, SameSite=Strict, Path={path}"
    )


@check(
    "tokens.lifetime",
    title="Access tokens are short-lived",
    owasp="API2:2023",
    asvs="V9.2.1",
    guide="Access tokens expire in 15 minutes (expiresIn: '15m')",
    fix="Give access tokens an exp claim at most 15 minutes after issue; use refresh tokens "
    "for longer sessions.",
    max_requests=3,
)
async def tokens_lifetime(ctx: CheckContext) -> str:
    _, _, token = await ctx.signed_in()
    if not is_jwt(token):
        raise Inconclusive("the access token is not a JWT: its lifetime cannot be read")
    claims = decode_part(token.split(".")[1]) or {}
    limit = ctx.profile.limits.access_token_lifetime
    most = ctx.profile.limits.access_ttl
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float):
        raise Failed("the access token has no exp claim: it never expires")
    start = iat if isinstance(iat, int | float) else time.time()
    lifetime = exp - start
    ctx.note(f"exp - {'iat' if iat is not None else 'now'} = {lifetime:.0f} s (limit {most} s)")
    # A minute of slack for a clock that differs from ours when there is no iat.
    # (and one second for libraries that write exp as a float).
    slack = 1 if isinstance(iat, int | float) else 60
    ctx.expect(lifetime <= most + slack, f"the access token lives {lifetime:.0f} s, over {limit}")
    ctx.expect(lifetime > 0, "the access token was issued already expired")
    return f"the access token lives {lifetime:.0f} s (at most {limit})"


@check(
    "tokens.type-separation",
    title="A refresh token is not an access token, nor the reverse",
    owasp="API2:2023",
    asvs="V9.2.2",
    guide="Sign access and refresh tokens with different secrets",
    fix="Sign the two kinds with different keys and put a typ claim in each that the "
    "verifier checks.",
    max_requests=8,
)
async def tokens_type_separation(ctx: CheckContext) -> str:
    ctx.require("auth.refresh")
    browser, _, token = await ctx.signed_in()
    name = ctx.present(ctx.refresh_cookie_name(browser), "the login answer sets no refresh cookie")
    refresh_token = browser.cookies[name]
    ctx.control(
        await ctx.authorised_read(browser, token, "the access token") == 200,
        "the access token is not accepted",
    )
    problems = []
    if (
        200
        <= await ctx.authorised_read(browser, refresh_token, "the refresh token as Bearer")
        < 300
    ):
        problems.append("the refresh token is accepted as an access token")
    swapped = await browser.request(
        ctx.profile.auth.refresh.method,
        ctx.profile.auth.refresh.path,
        cookies={**browser.cookies, name: token},
        note="the access token as the refresh cookie",
    )
    ctx.not_limited(swapped, "refreshing")
    if swapped.status_code == 200:
        problems.append("the access token is accepted as a refresh token")
    control = await browser.request(
        ctx.profile.auth.refresh.method,
        ctx.profile.auth.refresh.path,
        cookies={**browser.cookies, name: refresh_token},
        note="the real refresh cookie",
    )
    ctx.not_limited(control, "refreshing")
    ctx.control(
        control.status_code == 200, f"the real refresh token answered {control.status_code}"
    )
    ctx.expect(not problems, "; ".join(problems))
    return "each kind of token is refused in the other's place, and works in its own"


@check(
    "tokens.no-store",
    title="Token responses are never cached",
    owasp="API8:2023",
    asvs="V14.3.2",
    guide="Token responses carry Cache-Control: no-store",
    fix="Send Cache-Control: no-store on every response that carries a token.",
    max_requests=5,
)
async def tokens_no_store(ctx: CheckContext) -> str:
    browser = ctx.browser()
    account = await ctx.new_account(browser)
    login, _ = await ctx.login(browser, account)
    answers = [("login", login)]
    if ctx.profile.has("auth.refresh"):
        refreshed = await ctx.call(browser, ctx.profile.auth.refresh, note="refresh")
        ctx.not_limited(refreshed, "refreshing")
        ctx.control(refreshed.status_code == 200, f"refresh answered {refreshed.status_code}")
        ctx.control(ctx.token_of(refreshed) is not None, "the refresh answer carries no token")
        answers.append(("refresh", refreshed))
    missing = []
    for what, response in answers:
        value = response.headers.get("cache-control", "")
        ctx.note(f"{what}: Cache-Control: {value or '(none)'}")
        if "no-store" not in value.lower():
            missing.append(what)
    ctx.expect(not missing, f"no Cache-Control: no-store on the {' and '.join(missing)} answer")
    return "login and refresh answers carry Cache-Control: no-store"

"""Authorisation: other users' objects, fields a response should not carry, fields a
write should not set, and operations for admins only."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from bastion.audit.client import Browser
from bastion.audit.context import CheckContext, fill, json_at
from bastion.audit.registry import check
from bastion.audit.verdicts import Inconclusive, NotApplicable

SECRET_NAMES = (
    "password",
    "passwd",
    "hash",
    "salt",
    "secret",
    "otp",
    "privatekey",
    "apikey",
    "resettoken",
    "refreshtoken",
    "mfa",
    "totp",
)


async def _create(
    ctx: CheckContext, browser: Browser, token: str, **extra: Any
) -> tuple[httpx.Response, str]:
    """One object of the signed-in user's (the profile's ``objects.create``): the answer
    and the object's id. The control of every object check."""
    ctx.require("objects")
    missing = [n for n, v in ctx.state.fixtures.items() if v is None]
    if missing:
        raise Inconclusive(f"control failed: the fixture(s) {', '.join(missing)} could not be read")
    created = await ctx.call(
        browser, ctx.profile.objects.create, token=token, note="create an object", **extra
    )
    ctx.not_limited(created, "creating an object")
    ctx.control(
        created.status_code in (200, 201), f"creating an object answered {created.status_code}"
    )
    try:
        object_id = json_at(created.json(), ctx.profile.objects.id_pointer)
    except ValueError:
        object_id = None
    ctx.control(isinstance(object_id, str | int), f"no id at {ctx.profile.objects.id_pointer}")
    return created, str(object_id)


@check(
    "authz.object-level",
    title="Another user's objects are out of reach (BOLA)",
    owasp="API1:2023",
    asvs="V8.2.2",
    guide="Scope every query by the owner: WHERE id = $1 AND user_id = $2",
    fix="Look objects up by id *and* owner on every operation, answer 404 for another user's "
    "(as for a missing one), and list only the caller's.",
    max_requests=20,
)
async def authz_object_level(ctx: CheckContext) -> str:
    owner, _, owner_token = await ctx.signed_in("owner")
    _, object_id = await _create(ctx, owner, owner_token)
    operations = ctx.profile.objects.operations
    reads = [op for op in operations if op.method == "GET"]
    ctx.control(bool(reads), "the profile lists no GET operation on an object")
    read = await ctx.call(
        owner, reads[0], token=owner_token, id=object_id, note="the owner reads it"
    )
    ctx.control(read.status_code == 200, f"the owner's read answered {read.status_code}")
    before = read.text
    intruder, _, intruder_token = await ctx.signed_in("intruder")
    leaks = []
    for op in [*reads, *(op for op in operations if op.method != "GET")]:
        answer = await ctx.call(
            intruder, op, token=intruder_token, id=object_id, note="another user"
        )
        ctx.not_limited(answer, "another user's request")
        if answer.status_code not in (403, 404):
            leaks.append(f"{op.method} {op.path} answered {answer.status_code}")
        elif object_id in answer.text and object_id not in fill(op.path, {"id": ""}):
            leaks.append(f"{op.method} {op.path} answered with the object's data")
    if ctx.profile.objects.listing is not None:
        listed = await ctx.call(
            intruder, ctx.profile.objects.listing, token=intruder_token, note="another user lists"
        )
        if object_id in listed.text:
            leaks.append("another user's list holds the object")
    after = await ctx.call(
        owner, reads[0], token=owner_token, id=object_id, note="the owner reads it again"
    )
    if after.status_code != 200 or after.text != before:
        leaks.append("another user's requests changed the object")
    ctx.expect(not leaks, "; ".join(leaks))
    return (
        f"another user got 403/404 and none of the object on {len(operations)} operations "
        "and the list"
    )


def _secret_fields(value: Any, where: str = "") -> list[str]:
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}/{key}"
            flat = key.lower().replace("_", "").replace("-", "")
            if any(name in flat for name in SECRET_NAMES) and not flat.startswith("accesstoken"):
                found.append(path)
            found += _secret_fields(item, path)
    elif isinstance(value, list):
        for i, item in enumerate(value[:5]):
            found += _secret_fields(item, f"{where}/{i}")
    return found


def _undeclared(
    ctx: CheckContext, schema: dict[str, Any] | None, value: Any, where: str = ""
) -> list[str]:
    """Fields of ``value`` its schema does not declare (where it lists properties)."""
    openapi = ctx.state.openapi
    if schema is None or openapi is None:
        return []
    schema = openapi.resolve(schema)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:  # where a schema is a choice, judge none of its fields
            return []
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        props = schema["properties"]
        out = [f"{where}/{k}" for k in value if k not in props]
        for k, v in value.items():
            if k in props:
                out += _undeclared(ctx, props[k], v, f"{where}/{k}")
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [f for v in value[:5] for f in _undeclared(ctx, schema["items"], v, f"{where}/0")]
    return []


@check(
    "authz.property-level",
    title="Responses carry only declared fields, and nothing secret",
    owasp="API3:2023",
    asvs="V8.2.3",
    guide="Return an explicit allowlist of fields, never the database row",
    fix="Build every response from a response model (an allowlist); never serialise the "
    "stored record, and never send password hashes, salts or secrets.",
    max_requests=12,
)
async def authz_property_level(ctx: CheckContext) -> str:
    browser, _, token = await ctx.signed_in()
    answers: list[tuple[str, str, httpx.Response]] = []
    me = ctx.profile.auth.me
    answers.append((me.method, me.path, await ctx.call(browser, me, token=token, note="me")))
    if ctx.profile.has("objects"):
        created, object_id = await _create(ctx, browser, token)
        answers.append(
            (ctx.profile.objects.create.method, ctx.profile.objects.create.path, created)
        )
        for op in ctx.profile.objects.operations:
            if op.method == "GET":
                path = fill(op.path, {"id": object_id})
                answers.append(
                    (op.method, path, await ctx.call(browser, op, token=token, id=object_id))
                )
        listing = ctx.profile.objects.listing
        answers.append(
            (listing.method, listing.path, await ctx.call(browser, listing, token=token))
        )
    problems = []
    judged = 0
    for method, path, answer in answers:
        ctx.not_limited(answer, f"{method} {path}")
        if answer.status_code >= 300:
            continue
        try:
            body = answer.json()
        except ValueError:
            continue
        judged += 1
        problems += [f"{method} {path}: {f}" for f in _secret_fields(body)]
        schema = (
            ctx.state.openapi.response_schema(method, path, answer.status_code)
            if ctx.state.openapi
            else None
        )
        problems += [f"{method} {path}: undeclared {f}" for f in _undeclared(ctx, schema, body)]
    ctx.control(judged >= 1, "no response could be judged")
    ctx.expect(not problems, "; ".join(problems[:8]))
    against = "their OpenAPI schemas" if ctx.state.openapi else "secret names (no OpenAPI document)"
    return f"{judged} responses checked against {against}: nothing extra"


@check(
    "authz.mass-assignment",
    title="Writes cannot set fields only the server decides",
    owasp="API3:2023",
    asvs="V15.3.3",
    guide="Validate request bodies against a strict schema; pick the fields you allow",
    fix="Reject unknown and read-only fields (role, isAdmin, id, userId, status, prices, "
    "totals) with 400, or ignore them; never copy a request body into a record.",
    max_requests=14,
)
async def authz_mass_assignment(ctx: CheckContext) -> str:
    browser, account, token = await ctx.signed_in()
    update = ctx.profile.objects.update
    problems = []
    plain = await ctx.call(browser, update, token=token, note="a plain update (the control)")
    ctx.not_limited(plain, "updating")
    ctx.control(plain.status_code in (200, 204), f"a plain update answered {plain.status_code}")
    privileged = {
        "role": "admin",
        "isAdmin": True,
        "admin": True,
        "roles": ["admin"],
        "id": str(uuid.uuid4()),
        "userId": str(uuid.uuid4()),
        "emailVerified": True,
    }
    body = {**(fill(update.body, ctx.variables(account)) or {}), **privileged}
    sneaky = await browser.request(
        update.method,
        fill(update.path, ctx.variables(account)),
        json=body,
        token=token,
        note="the update with privileged fields",
    )
    me = await ctx.call(browser, ctx.profile.auth.me, token=token, note="read back")
    ctx.control(me.status_code == 200, f"reading the user back answered {me.status_code}")
    if sneaky.status_code < 300:
        mine = me.json()
        taken = [k for k, v in privileged.items() if isinstance(mine, dict) and mine.get(k) == v]
        if isinstance(mine, dict) and str(mine.get("role", "")).lower() == "admin":
            taken.append("role")
        if taken:
            problems.append(f"the update stored {', '.join(sorted(set(taken)))}")
    if ctx.profile.has("objects"):
        own_id = str(uuid.uuid4())
        await _create(ctx, browser, token)  # the control: a plain create works
        create = ctx.profile.objects.create
        body = fill(create.body, ctx.variables(account))
        extra = {
            "id": own_id,
            "status": "shipped",
            "userId": str(uuid.uuid4()),
            "totalCents": 1,
            "subtotalCents": 1,
            "discountCents": 10**6,
            "total": 1,
            "price": 1,
        }
        if isinstance(body, dict):
            body = {**body, **extra}
        sneaky = await browser.request(
            create.method,
            create.path,
            json=body,
            token=token,
            note="the create with server-decided fields",
        )
        ctx.not_limited(sneaky, "creating")
        if sneaky.status_code < 300:
            try:
                made = sneaky.json()
            except ValueError:
                made = {}
            taken = [k for k, v in extra.items() if isinstance(made, dict) and made.get(k) == v]
            if taken:
                problems.append(f"the create stored {', '.join(taken)}")
        elif sneaky.status_code >= 500:
            problems.append(f"the create with extra fields answered {sneaky.status_code}")
    ctx.expect(not problems, "; ".join(problems))
    return "privileged and server-decided fields were refused or had no effect (read back)"


@check(
    "authz.function-level",
    title="Admin operations: 401 without a token, 403 for a normal user",
    owasp="API5:2023",
    asvs="V8.2.1",
    guide="Check the role on every admin route (a requireRole('admin') middleware)",
    fix="Check the caller's role on the server for every admin operation; answer 401 "
    "without credentials and 403 for a user without the role.",
    max_requests=12,
)
async def authz_function_level(ctx: CheckContext) -> str:
    ctx.require("admin")
    ctx.control(bool(ctx.profile.admin), "the profile lists no admin operation")
    browser, _, token = await ctx.signed_in()
    ctx.control(
        await ctx.authorised_read(browser, token, "the user's token works") == 200, "token refused"
    )
    problems = []
    missing = 0
    for op in ctx.profile.admin:
        anonymous = await ctx.call(browser, op, note="no token")
        ctx.not_limited(anonymous, "an admin operation")
        user = await ctx.call(browser, op, token=token, note="a normal user")
        ctx.not_limited(user, "an admin operation")
        if anonymous.status_code == 404 and user.status_code == 404:
            missing += 1  # no such operation (or one hidden from everyone alike)
            continue
        if anonymous.status_code != 401:
            problems.append(f"{op.method} {op.path} without a token: {anonymous.status_code}")
        if user.status_code not in (403, 404):
            problems.append(f"{op.method} {op.path} for a normal user: {user.status_code}")
    if missing == len(ctx.profile.admin):
        raise NotApplicable(
            "every admin operation of the profile answers 404 with or without a token: list "
            "the target's own in the profile's admin"
        )
    ctx.expect(not problems, "; ".join(problems))
    return f"{len(ctx.profile.admin)} admin operations: 401 without a token, 403 for a user"

"""GraphQL: depth and alias limits, and introspection."""

from __future__ import annotations

import httpx

from bastion.audit.context import CheckContext
from bastion.audit.registry import check
from bastion.audit.verdicts import NotApplicable

# Introspection types nest without end: the one deep query valid on every schema.
DEEP = (
    "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { name } } } } } }"
    " } } }"
)
ALIASES = 100


@check(
    "graphql.limits",
    title="GraphQL refuses deep and wide queries; introspection is off",
    owasp="API4:2023",
    asvs="V4.3.1",
    guide="Limit query depth and cost; disable introspection in production",
    fix="Check every query against depth, alias and size limits before running it (400), and "
    "turn introspection off outside development.",
    max_requests=8,
)
async def graphql_limits(ctx: CheckContext) -> str:
    ctx.require("graphql")
    browser = ctx.browser()
    path = ctx.profile.graphql

    async def ask(query: str, note: str) -> httpx.Response:
        answer = await browser.request("POST", path, json={"query": query}, note=note)
        ctx.not_limited(answer, "a GraphQL query")
        return answer

    def ran(answer: httpx.Response) -> bool:
        try:
            body = answer.json()
        except ValueError:
            return False
        return (
            answer.status_code == 200
            and isinstance(body, dict)
            and body.get("data") is not None
            and not body.get("errors")
        )

    control = await ask("{ __typename }", "the control")
    if control.status_code in (404, 405):
        raise NotApplicable(f"no GraphQL endpoint at {path} ({control.status_code})")
    ctx.control(ran(control), f"{{ __typename }} answered {control.status_code}")
    ctx.control(
        ran(await ask("{ a0: __typename }", "one alias")), "a query with one alias did not run"
    )
    problems = []
    # The deep query nests introspection types, which a development target may exempt
    # from its depth limit while introspection is on (Bastion does): judged elsewhere.
    if not ctx.profile.development and ran(await ask(DEEP, "10 levels deep")):
        problems.append("a query 10 levels deep ran")
    wide = "{ " + " ".join(f"a{i}: __typename" for i in range(ALIASES)) + " }"
    if ran(await ask(wide, f"{ALIASES} aliases")):
        problems.append(f"a query with {ALIASES} aliases ran")
    introspection = await ask("{ __schema { queryType { name } } }", "introspection")
    if ran(introspection) and not ctx.profile.development:
        problems.append(
            "introspection answers (set development = true in the profile if this is a "
            "development target)"
        )
    ctx.expect(not problems, "; ".join(problems))
    state = "allowed (development)" if ctx.profile.development else "off"
    return f"deep and {ALIASES}-alias queries refused; introspection {state}"

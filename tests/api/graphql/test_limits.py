"""Depth, aliases, tokens and ``first``: a query at a limit runs, one past it gets a 400
that names the limit, before anything runs. Fragments (nested, repeated, cyclic) neither
hide depth or aliases from the count nor make the count itself expensive."""

from __future__ import annotations

from typing import Any

import pytest
from graphql.language import Lexer, Source, TokenKind

from bastion.api.graphql.limits import GraphQLLimits
from bastion.api.graphql.router import limits_from
from bastion.app import BastionApp
from bastion.config import ConfigError, load_settings
from tests.api.graphql.conftest import CountingDatabase, data, gql
from tests.api.problem import assert_problem
from tests.conftest import Client, client_for

INVALID = "The query is not valid for this API."


def tokens(query: str) -> int:
    """graphql-core's own count of the query's tokens."""
    lexer, n = Lexer(Source(query)), 0
    while lexer.advance().kind != TokenKind.EOF:
        n += 1
    return n


def aliases(n: int, field: str = "__typename") -> str:
    return " ".join(f"a{i}: {field}" for i in range(n))


# ---------------------------------------------------------------------------------- depth

DEPTH_3 = "{ me { orders { items { quantity } } } }"
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


async def test_a_query_at_the_depth_limit_runs(start_app: Any) -> None:
    async with client_for(await start_app(graphql_max_depth=3)) as client:
        user = await client.user()
        assert data(await gql(client, DEPTH_3, user=user)) == {"me": {"orders": []}}


@pytest.mark.parametrize("query", DEPTH_4.values(), ids=DEPTH_4.keys())
async def test_a_query_one_level_past_the_depth_limit_is_a_400(start_app: Any, query: str) -> None:
    async with client_for(await start_app(graphql_max_depth=3)) as client:
        user = await client.user()
        r = await gql(client, query, user=user, operationName="A" if "query A" in query else None)
        body = assert_problem(r, 400, "#/query")
        assert body["detail"] == "The query is 4 levels deep; at most 3 are allowed."


async def test_the_default_depth_limit_is_six_and_applies_before_validation(
    client: Client,
) -> None:
    def nested(depth: int) -> str:
        return "{" + " f {" * depth + " leaf" + " }" * depth + " }"

    # Six levels of made-up fields pass the limit and fail validation; seven fail the limit.
    assert assert_problem(await gql(client, nested(6)), 400)["detail"] == INVALID
    body = assert_problem(await gql(client, nested(7)), 400, "#/query")
    assert body["detail"] == "The query is 7 levels deep; at most 6 are allowed."


async def test_a_long_chain_of_nested_fragments_is_counted_in_full(client: Client) -> None:
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
    user = await client.user()
    body = assert_problem(await gql(client, query, user=user), 400, "#/query")
    assert any("within itself" in e["detail"] for e in body["errors"]), body


# -------------------------------------------------------------------------------- aliases


async def test_fifteen_aliases_run_and_sixteen_are_a_400(client: Client) -> None:
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
    user = await client.user()
    body = assert_problem(await gql(client, query, user=user), 400, "#/query")
    assert body["detail"] == f"The query uses {count} aliases; at most 15 are allowed."


async def test_a_fragment_with_aliases_spread_once_counts_once(client: Client) -> None:
    query = "{ ...A } fragment A on Query { " + aliases(15) + " }"
    assert len(data(await gql(client, query))) == 15


async def test_an_alias_bomb_of_doubling_fragments_is_refused_at_once(client: Client) -> None:
    # Each fragment spreads the next twice: 2^60 copies of 15 aliases, in under 700
    # tokens. Counting by walking every spread would never finish.
    chain = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(60))
    query = f"{{ ...F0 }} {chain} fragment F60 on Query {{ {aliases(15)} }}"
    assert tokens(query) <= 1000
    body = assert_problem(await gql(client, query), 400, "#/query")
    assert body["detail"] == "The query uses over a million aliases; at most 15 are allowed."


# --------------------------------------------------------------------------------- tokens


async def test_a_thousand_tokens_run_and_one_more_is_a_400(client: Client) -> None:
    def query(padding: int) -> str:
        return "{ " + "products(first: 1) { id } " * 110 + "__typename " * padding + "}"

    assert tokens(query(8)) == 1000
    assert len(data(await gql(client, query(8)))["products"]) == 1
    body = assert_problem(await gql(client, query(9)), 400, "#/query")
    assert body["detail"] == "The query has more than 1000 tokens; at most 1000 are allowed."


# ---------------------------------------------------------------------------------- first


@pytest.mark.parametrize("field", ["products(first: N) { id }", "me { orders(first: N) { id } }"])
async def test_first_runs_from_1_to_100(client: Client, field: str) -> None:
    user = await client.user()
    for n in (1, 100):
        data(await gql(client, "{ " + field.replace("N", str(n)) + " }", user=user))


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
    user = await client.user()
    body = assert_problem(await gql(client, query, user=user, variables=variables), 400, pointer)
    assert body["detail"] == f"first must be between 1 and 100, not {shown}."


# ------------------------------------------------------------------------ before anything


async def test_a_query_over_a_limit_touches_nothing_and_is_logged(
    app: BastionApp,
    client: Client,
    statements: CountingDatabase,
    events: list[dict[str, Any]],
) -> None:
    user = await client.user()
    statements.reset()
    query = "{ me { orders(first: 101) { id items { product { name } } } } products { id } }"
    assert_problem(await gql(client, query, user=user), 400, "#/query")
    assert statements.statements == []
    rejected = [e for e in events if e["event"] == "input.rejected"]
    assert [(e["reason"], e["user_id"], e["path"]) for e in rejected] == [
        ("graphql limit: first", user["id"], "/api/graphql")
    ]


@pytest.mark.parametrize(
    ("settings", "query", "detail"),
    [
        (
            {"graphql_max_depth": 1},
            "{ me { orders { id } } }",
            "The query is 2 levels deep; at most 1 are allowed.",
        ),
        (
            {"graphql_max_aliases": 2},
            "{ " + aliases(3) + " }",
            "The query uses 3 aliases; at most 2 are allowed.",
        ),
        (
            {"graphql_max_tokens": 5},
            "{ products { id } }",
            "The query has more than 5 tokens; at most 5 are allowed.",
        ),
        (
            {"graphql_max_first": 5},
            "{ products(first: 6) { id } }",
            "first must be between 1 and 5, not 6.",
        ),
    ],
    ids=["depth", "aliases", "tokens", "first"],
)
async def test_each_limit_is_configurable(
    start_app: Any, settings: dict[str, int], query: str, detail: str
) -> None:
    async with client_for(await start_app(**settings)) as client:
        user = await client.user()
        body = assert_problem(await gql(client, query, user=user), 400, "#/query")
        assert body["detail"] == detail


def test_the_limits_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("DEPTH", "4"), ("ALIASES", "3"), ("TOKENS", "200"), ("FIRST", "50")):
        monkeypatch.setenv(f"BASTION_GRAPHQL_MAX_{name}", value)
    settings = load_settings(access_secret="a" * 40, refresh_secret="b" * 40)
    assert limits_from(settings) == GraphQLLimits(
        max_depth=4, max_aliases=3, max_tokens=200, max_first=50
    )
    assert GraphQLLimits() == GraphQLLimits(
        max_depth=6, max_aliases=15, max_tokens=1000, max_first=100
    )


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5"])
def test_a_bad_limit_stops_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("BASTION_GRAPHQL_MAX_DEPTH", value)
    with pytest.raises(ConfigError, match="BASTION_GRAPHQL_MAX_DEPTH"):
        load_settings(access_secret="a" * 40, refresh_secret="b" * 40)
    with pytest.raises(ValueError, match="max_depth"):
        GraphQLLimits(max_depth=0)

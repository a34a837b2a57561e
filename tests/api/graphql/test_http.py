"""The security middleware covers /api/graphql as it covers REST: the global rate limit,
the body limit and the JSON-only rule act before any GraphQL is parsed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.graphql.conftest import data, gql
from tests.api.problem import assert_problem
from tests.conftest import Client, client_for

QUERY = "{ products(first: 1) { id } }"


async def test_the_global_rate_limit_counts_graphql_requests(start_app: Any) -> None:
    async with client_for(await start_app(rate_limit_global="3/minute")) as client:
        answers = [await gql(client, QUERY) for _ in range(3)]
        assert [r.status_code for r in answers] == [200, 200, 200]
        assert answers[0].headers["ratelimit-policy"] == '"global";q=3;w=60'
        refused = await gql(client, QUERY)
    assert_problem(refused, 429)
    assert int(refused.headers["retry-after"]) > 0


async def test_queries_over_a_limit_still_spend_the_rate_limit(start_app: Any) -> None:
    async with client_for(await start_app(rate_limit_global="2/minute")) as client:
        over = "{ " + " ".join(f"a{i}: __typename" for i in range(16)) + " }"
        assert_problem(await gql(client, over), 400)
        assert_problem(await gql(client, over), 400)
        assert_problem(await gql(client, QUERY), 429)


async def test_a_body_just_under_the_limit_runs(client: Client) -> None:
    body = '{"query": "' + QUERY + " #" + "x" * 9_000 + '"}'
    assert len(body) < 10 * 1024
    r = await client.post(
        "/api/graphql", content=body, headers={"Content-Type": "application/json"}
    )
    assert data(r)["products"]


@pytest.mark.parametrize(
    "content_type", ["application/graphql", "text/plain", "application/x-www-form-urlencoded"]
)
async def test_a_body_that_is_not_json_is_a_415(client: Client, content_type: str) -> None:
    r = await client.post("/api/graphql", content=QUERY, headers={"Content-Type": content_type})
    assert_problem(r, 415)


async def test_an_answer_carries_the_security_headers(client: Client) -> None:
    r = await gql(client, QUERY)
    data(r)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "server" not in r.headers

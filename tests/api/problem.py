"""Assertions on problem details and on what a request left behind."""

from __future__ import annotations

from typing import Any

from tests.conftest import Client

Problem = dict[str, Any]


def assert_problem(response: Any, status: int, *pointers: str) -> Problem:
    """An RFC 9457 answer with this status, whose ``errors`` name exactly ``pointers``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: Problem = response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail"} <= body.keys()
    if pointers:
        assert sorted({e["pointer"] for e in body["errors"]}) == sorted(set(pointers)), body
        assert all(e["detail"] for e in body["errors"])
    return body


async def order_count(client: Client, headers: dict[str, str]) -> int:
    r = await client.get("/api/orders?limit=100", headers=headers)
    assert r.status_code == 200
    return len(r.json()["items"])

"""GET /api/orders, GET /api/orders/{id}, POST /api/orders/{id}/cancel: a user sees and
touches their own orders only. Another user's order not existing for them is in
tests/attacks/test_api1_object_level_authorization.py."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.app import BastionApp
from tests.api.bodies import order_body
from tests.api.problem import assert_problem
from tests.conftest import Client


async def _order(client: Client, user: dict[str, Any], quantity: int = 1) -> dict[str, Any]:
    body = order_body((await client.product_ids())[:1], quantity)
    r = await client.post("/api/orders", json=body, headers=user["headers"])
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_an_order_reads_back_as_it_was_created(client: Client) -> None:
    user = await client.user()
    created = await _order(client, user, quantity=4)
    r = await client.get(f"/api/orders/{created['id']}", headers=user["headers"])
    assert r.status_code == 200
    assert r.json() == created


async def test_an_order_id_in_upper_case_or_without_hyphens_names_the_same_order(
    client: Client,
) -> None:
    user = await client.user()
    order_id = (await _order(client, user))["id"]
    for form in (order_id.upper(), order_id.replace("-", "")):
        r = await client.get(f"/api/orders/{form}", headers=user["headers"])
        assert r.status_code == 200
        assert r.json()["id"] == order_id


async def test_a_missing_order_is_not_an_authorisation_event(
    client: Client, events: list[dict[str, Any]]
) -> None:
    user = await client.user()
    r = await client.get(
        "/api/orders/00000000-0000-4000-8000-000000000000", headers=user["headers"]
    )
    assert_problem(r, 404)
    assert not [e for e in events if e["event"] == "authz.denied"]


async def test_the_order_list_holds_only_the_callers_orders_newest_first(client: Client) -> None:
    alice, bob = await client.user(), await client.user()
    alices = [(await _order(client, alice, quantity=q))["id"] for q in (1, 2, 3)]
    bobs = [(await _order(client, bob))["id"]]
    r = await client.get("/api/orders", headers=alice["headers"])
    assert r.status_code == 200
    assert [o["id"] for o in r.json()["items"]] == alices[::-1]
    assert r.json()["nextCursor"] is None
    r = await client.get("/api/orders", headers=bob["headers"])
    assert [o["id"] for o in r.json()["items"]] == bobs


async def test_listing_orders_needs_a_bearer_token(client: Client) -> None:
    r = await client.get("/api/orders")
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_cancelling_a_pending_order_cancels_it_once(client: Client) -> None:
    user = await client.user()
    order = await _order(client, user)
    r = await client.post(f"/api/orders/{order['id']}/cancel", headers=user["headers"])
    assert r.status_code == 200
    assert r.json() == {**order, "status": "cancelled"}
    again = await client.post(f"/api/orders/{order['id']}/cancel", headers=user["headers"])
    assert_problem(again, 409)
    assert "cancelled" in again.json()["detail"]
    stored = await client.get(f"/api/orders/{order['id']}", headers=user["headers"])
    assert stored.json()["status"] == "cancelled"


@pytest.mark.parametrize("status", ["paid", "shipped"])
async def test_an_order_past_pending_cannot_be_cancelled(
    app: BastionApp, client: Client, status: str
) -> None:
    user = await client.user()
    order = await _order(client, user)
    await app.services.db.execute(
        "UPDATE orders SET status = $1 WHERE id = $2", status, order["id"]
    )
    r = await client.post(f"/api/orders/{order['id']}/cancel", headers=user["headers"])
    assert_problem(r, 409)
    stored = await client.get(f"/api/orders/{order['id']}", headers=user["headers"])
    assert stored.json()["status"] == status


async def test_cancel_answers_404_for_an_order_that_does_not_exist(client: Client) -> None:
    user = await client.user()
    r = await client.post(
        "/api/orders/00000000-0000-4000-8000-000000000000/cancel", headers=user["headers"]
    )
    assert_problem(r, 404)

"""API1:2023 Broken Object Level Authorization.

The attacker is signed in and names objects that are someone else's: another user's order
id, page cursor or session id, or a GraphQL path to orders. The defence: every lookup is
scoped to the account the token names, and another user's object answers exactly as one
that does not exist (404), with an ``authz.denied`` event."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.app import BastionApp
from tests.api.bodies import order_body
from tests.api.graphql.conftest import data, gql, place_orders
from tests.api.problem import assert_problem
from tests.api.test_orders import _order
from tests.auth.conftest import Device, record_events
from tests.conftest import Client

# ------------------------------------------------------------------------------- REST


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("POST", "/cancel")], ids=["get", "cancel"]
)
async def test_another_users_order_is_not_found_and_the_attempt_is_logged(
    client: Client, events: list[dict[str, Any]], method: str, suffix: str
) -> None:
    """Attacker: reads or cancels another user's order by id. Defence: owner-scoped lookup, 404."""
    owner, intruder = await client.user(), await client.user()
    order = await _order(client, owner)
    r = await client.request(
        method, f"/api/orders/{order['id']}{suffix}", headers=intruder["headers"]
    )
    assert_problem(r, 404)
    absent = await client.request(
        method, f"/api/orders/00000000-0000-4000-8000-000000000000{suffix}",
        headers=intruder["headers"],
    )  # fmt: skip
    assert absent.json() == r.json()
    denied = [e for e in events if e["event"] == "authz.denied"]
    assert [e["user_id"] for e in denied] == [intruder["id"]]
    mine = await client.get(f"/api/orders/{order['id']}", headers=owner["headers"])
    assert mine.json()["status"] == "pending"


async def test_another_users_cursor_shows_only_the_callers_orders(client: Client) -> None:
    """Attacker: pages with another user's cursor. Defence: the owner comes from the token."""
    alice, bob = await client.user(), await client.user()
    body = order_body((await client.product_ids())[:1])
    for _ in range(3):
        await client.post("/api/orders", json=body, headers=alice["headers"])
    bobs = (await client.post("/api/orders", json=body, headers=bob["headers"])).json()["id"]
    page = await client.get("/api/orders?limit=1", headers=alice["headers"])
    r = await client.get(
        "/api/orders", params={"cursor": page.json()["nextCursor"]}, headers=bob["headers"]
    )
    assert r.status_code == 200
    assert [o["id"] for o in r.json()["items"]] in ([], [bobs])


async def test_another_users_session_cannot_be_deleted(
    auth_app: BastionApp, two_users: tuple[list[Device], Device, dict[str, Any]]
) -> None:
    """Attacker: ends another user's session by its id. Defence: owner-scoped delete, 404."""
    (this, _, _), stranger, _ = two_users
    events = record_events(auth_app)
    r = await stranger.client.delete(
        f"/api/auth/sessions/{this.session_id}", headers=stranger.headers
    )
    assert r.status_code == 404
    assert [e["event"] for e in events] == ["authz.denied"]
    assert await this.me() == 200
    assert await this.refresh() == 200


async def test_the_sessions_list_shows_no_one_elses_sessions(
    two_users: tuple[list[Device], Device, dict[str, Any]],
) -> None:
    """Attacker: lists sessions to find others'. Defence: the list is the caller's alone."""
    (this, sibling, cousin), stranger, _ = two_users
    r = await stranger.client.get("/api/auth/sessions", headers=stranger.headers)
    assert [s["id"] for s in r.json()["items"]] == [stranger.session_id]
    r = await this.client.get("/api/auth/sessions", headers=this.headers)
    assert {s["id"] for s in r.json()["items"]} == {
        this.session_id,
        sibling.session_id,
        cousin.session_id,
    }


# ---------------------------------------------------------------------------- GraphQL


ALL_PATHS = """
query Everything {
  me { id orders(first: 100) { id items { product { id } } } }
  again: me { ...Mine }
  ... on Query { me { ...Mine } }
}
fragment Mine on User { orders(first: 100) { id } }
"""


async def test_every_path_to_orders_gives_the_callers_own_and_nobody_elses(
    client: Client,
) -> None:
    """Attacker: reaches orders by aliases and fragments. Defence: orders hang off me only."""
    alice, bob = await client.user(), await client.user()
    alices = set(await place_orders(client, alice, 3))
    bobs = set(await place_orders(client, bob, 2))
    for user, own, other in ((alice, alices, bobs), (bob, bobs, alices)):
        r = await gql(client, ALL_PATHS, user=user)
        got = data(r)
        assert {o["id"] for o in got["me"]["orders"]} == own
        assert {o["id"] for o in got["again"]["orders"]} == own
        assert got["me"]["id"] == user["id"]
        assert not any(order_id in r.text for order_id in other)


async def test_me_is_the_account_the_token_names(client: Client) -> None:
    """Attacker: asks for another account as me. Defence: me is whoever the token names."""
    alice = await client.user(name="Alice")
    bob = await client.user(name="Bob")
    for user in (alice, bob):
        me: dict[str, Any] = data(await gql(client, "{ me { id email name } }", user=user))["me"]
        assert me == {"id": user["id"], "email": user["email"], "name": user["name"]}

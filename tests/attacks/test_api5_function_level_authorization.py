"""API5:2023 Broken Function Level Authorization.

The attacker calls functions that are not theirs to call: the admin routes (the user
list, unlocking an account, the security log) anonymously or with an ordinary user's
token, and GraphQL operations other than queries. The defence: every admin route needs
a token (401) of the admin role (403), and /api/graphql runs read-only queries only."""

from __future__ import annotations

import pytest

from tests.api.graphql.conftest import gql
from tests.api.problem import assert_problem
from tests.conftest import Client


def _requests(user_id: str) -> list[tuple[str, str]]:
    return [
        ("GET", "/api/admin/users"),
        ("POST", f"/api/admin/users/{user_id}/unlock"),
        ("DELETE", f"/api/admin/users/{user_id}/sessions"),
    ]


ADMIN_ROUTES = pytest.mark.parametrize("which", [0, 1, 2], ids=["list", "unlock", "end-sessions"])


@ADMIN_ROUTES
async def test_admin_routes_need_a_token(client: Client, which: int) -> None:
    """Attacker: calls the admin routes anonymously. Defence: 401 with WWW-Authenticate."""
    user = await client.register()
    method, path = _requests(user["id"])[which]
    r = await client.request(method, path)
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")


@ADMIN_ROUTES
async def test_admin_routes_are_forbidden_to_users(client: Client, which: int) -> None:
    """Attacker: calls the admin routes with a user's token. Defence: the admin role, else 403."""
    user = await client.user()
    method, path = _requests(user["id"])[which]
    assert_problem(await client.request(method, path, headers=user["headers"]), 403)
    # Refused before it did anything: the caller's own session is still alive.
    assert (await client.get("/api/users/me", headers=user["headers"])).status_code == 200


async def test_security_events_are_for_admins_only(client: Client) -> None:
    """Attacker: reads the security log as nobody, then as a user. Defence: 401, then 403."""
    anonymous = await client.get("/api/admin/security-events")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    user = await client.user()
    forbidden = await client.get("/api/admin/security-events", headers=user["headers"])
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"] == "application/problem+json"
    assert "items" not in forbidden.json()


@pytest.mark.parametrize(
    "query",
    [
        "mutation { me { id } }",
        "subscription { products { id } }",
        'mutation { createOrder(productId: "x") { id } }',
    ],
    ids=["mutation", "subscription", "made-up-mutation"],
)
async def test_only_queries_run_here(client: Client, query: str) -> None:
    """Attacker: sends a mutation or a subscription. Defence: only queries run here; 400."""
    user = await client.user()
    assert_problem(await gql(client, query, user=user), 400)

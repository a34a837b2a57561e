"""/api/users/me: read, rename, change password. That nothing else is writable or
readable is in tests/attacks/test_api3_property_level_authorization.py."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.problem import assert_problem
from tests.conftest import PASSWORD, Client

USER_FIELDS = {"id", "email", "name", "role", "createdAt"}
NEW_PASSWORD = "Violet-Tugboat-Marmalade-7"


async def test_me_needs_a_bearer_token(client: Client) -> None:
    r = await client.get("/api/users/me")
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_patch_me_renames_and_trims_the_name(client: Client) -> None:
    user = await client.user()
    r = await client.patch(
        "/api/users/me", json={"name": "  Grace Hopper \t"}, headers=user["headers"]
    )
    assert r.status_code == 200
    assert set(r.json()) == USER_FIELDS
    assert r.json()["name"] == "Grace Hopper"
    again = await client.get("/api/users/me", headers=user["headers"])
    assert again.json()["name"] == "Grace Hopper"


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({}, "#/name"),
        ({"name": ""}, "#/name"),
        ({"name": "   "}, "#/name"),
        ({"name": "n" * 101}, "#/name"),
        ({"name": 42}, "#/name"),
        ({"name": None}, "#/name"),
        ({"name": "bell\x07"}, "#/name"),
        ({"name": ["a"]}, "#/name"),
    ],
)
async def test_patch_me_refuses_a_bad_name(
    client: Client, body: dict[str, Any], pointer: str
) -> None:
    user = await client.user()
    r = await client.patch("/api/users/me", json=body, headers=user["headers"])
    assert_problem(r, 400, pointer)


async def test_an_empty_name_is_refused_in_plain_words(client: Client) -> None:
    user = await client.user()
    r = await client.patch("/api/users/me", json={"name": "   "}, headers=user["headers"])
    problem = assert_problem(r, 400, "#/name")
    assert problem["errors"][0]["detail"] == "must not be empty"


async def test_a_password_change_needs_the_current_password(client: Client) -> None:
    user = await client.user()
    r = await client.post(
        "/api/users/me/password",
        json={"currentPassword": "Not-The-Password-99", "newPassword": NEW_PASSWORD},
        headers=user["headers"],
    )
    assert_problem(r, 400, "#/currentPassword")
    await client.login(user["email"], PASSWORD)


@pytest.mark.parametrize("weak", ["short-1", "password1234", "qwertyuiop123", "x" * 129])
async def test_a_password_change_refuses_a_weak_new_password(client: Client, weak: str) -> None:
    user = await client.user()
    r = await client.post(
        "/api/users/me/password",
        json={"currentPassword": PASSWORD, "newPassword": weak},
        headers=user["headers"],
    )
    assert_problem(r, 400, "#/newPassword")
    await client.login(user["email"], PASSWORD)


async def test_a_password_change_switches_the_password_that_logs_in(client: Client) -> None:
    user = await client.user()
    r = await client.post(
        "/api/users/me/password",
        json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
        headers=user["headers"],
    )
    assert r.status_code == 204
    assert r.content == b""
    old = await client.post("/api/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert_problem(old, 401)
    await client.login(user["email"], NEW_PASSWORD)


async def test_a_password_change_ends_the_other_sessions_but_not_this_one(client: Client) -> None:
    user = await client.user()
    other = await client.login(user["email"])
    r = await client.post(
        "/api/users/me/password",
        json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
        headers=user["headers"],
    )
    assert r.status_code == 204
    assert (await client.get("/api/users/me", headers=user["headers"])).status_code == 200
    stale = await client.get("/api/users/me", headers={"Authorization": f"Bearer {other}"})
    assert_problem(stale, 401)


@pytest.mark.parametrize(
    "body",
    [
        {"currentPassword": PASSWORD},
        {"newPassword": NEW_PASSWORD},
        {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD, "userId": "x"},
        {"currentPassword": 1234567890123, "newPassword": NEW_PASSWORD},
    ],
)
async def test_a_password_change_body_is_validated_strictly(
    client: Client, body: dict[str, Any]
) -> None:
    user = await client.user()
    r = await client.post("/api/users/me/password", json=body, headers=user["headers"])
    assert_problem(r, 400)
    await client.login(user["email"], PASSWORD)

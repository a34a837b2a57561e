"""Injection: API8:2019 Injection (the 2023 list has no entry of its own for it).

The attacker puts SQL injection probes in every input that reaches a query. The defence:
bound parameters everywhere and strict parsing of typed input, so each probe is taken
literally: never a 500, never a row the caller should not see, every table intact."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from bastion.app import BastionApp
from tests.api.bodies import address, order_body
from tests.conftest import Client

PROBES = [
    "' OR '1'='1",
    "' OR 1=1 --",
    "admin'--",
    "'; DROP TABLE users; --",
    "'); DROP TABLE orders; --",
    '" OR ""="',
    "1' UNION SELECT id, email, password_hash, role FROM users --",
    "' UNION SELECT NULL, NULL, NULL, NULL --",
    "') OR ('a'='a",
    "1; SELECT pg_sleep(5)",
    "' AND 1=(SELECT COUNT(*) FROM sqlite_master) --",
    "%' OR '%'='",
    "\\'; DELETE FROM products; --",
    "$1",
    "?1",
    "' || (SELECT password_hash FROM users LIMIT 1) || '",
    "x'/**/OR/**/'1'='1",
]
# Probes that are also well-formed where a format is checked (email local parts, UUIDs).
EMAIL_PROBES = [
    "x'or'1'='1@example.com",
    "admin'--@example.com",
    "x'||'a'='a@example.com",
    "'--@example.com",
]

COUNTS = {
    "users": "SELECT COUNT(*) AS n FROM users",
    "products": "SELECT COUNT(*) AS n FROM products",
    "orders": "SELECT COUNT(*) AS n FROM orders",
    "promo_codes": "SELECT COUNT(*) AS n FROM promo_codes",
}


@dataclass
class World:
    """Two users, one order each, and the counts that must not change."""

    alice: dict[str, Any]
    mallory: dict[str, Any]
    alice_order: dict[str, Any]
    mallory_order: dict[str, Any]
    products: int

    async def assert_intact(self, app: BastionApp, client: Client, *, users: int = 2) -> None:
        db = app.services.db
        counts = {
            table: (await db.fetchrow(sql))["n"]  # type: ignore[index]
            for table, sql in COUNTS.items()
        }
        assert counts["users"] == users
        assert counts["products"] == self.products
        assert counts["promo_codes"] == 2
        r = await client.get("/api/orders?limit=100", headers=self.mallory["headers"])
        assert [o["id"] for o in r.json()["items"]] == [self.mallory_order["id"]]
        r = await client.get(f"/api/orders/{self.alice_order['id']}", headers=self.alice["headers"])
        assert r.json() == self.alice_order
        me = await client.get("/api/users/me", headers=self.alice["headers"])
        assert me.json()["email"] == self.alice["email"]


@pytest.fixture
async def world(client: Client) -> World:
    alice, mallory = await client.user(), await client.user()
    ids = await client.product_ids()
    alice_order = await client.post(
        "/api/orders", json=order_body(ids[:1]), headers=alice["headers"]
    )
    mallory_order = await client.post(
        "/api/orders", json=order_body(ids[1:2]), headers=mallory["headers"]
    )
    return World(alice, mallory, alice_order.json(), mallory_order.json(), len(ids))


def _no_500(r: Any) -> None:
    assert r.status_code < 500, r.text


async def test_probes_in_the_registration_email_are_refused_or_stored_literally(
    app: BastionApp, client: Client, world: World
) -> None:
    """Attacker: SQL in the sign-up email. Defence: bound parameters; refused or stored as sent."""
    created = 0
    for probe in [*PROBES, *EMAIL_PROBES]:
        r = await client.post(
            "/api/auth/register",
            json={"email": probe, "password": "Correct-Horse-Battery-42", "name": "Probe"},
        )
        _no_500(r)
        assert r.status_code in (201, 400), r.text
        if r.status_code == 201:
            created += 1
            assert r.json()["email"] == probe.lower()
            token = await client.login(probe)
            me = await client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
            assert me.json()["email"] == probe.lower()
    assert created >= len(EMAIL_PROBES)
    await world.assert_intact(app, client, users=2 + created)


async def test_probes_in_the_login_email_and_password_never_log_in(
    app: BastionApp, client: Client, world: World
) -> None:
    """Attacker: SQL in the login email or password. Defence: bound parameters; no login."""
    for probe in PROBES:
        for body in (
            {"email": probe, "password": probe},
            {"email": world.alice["email"], "password": probe},
            {"email": world.alice["email"] + probe, "password": "Correct-Horse-Battery-42"},
        ):
            r = await client.post("/api/auth/login", json=body)
            _no_500(r)
            assert r.status_code in (400, 401), r.text
            assert "accessToken" not in r.text
    await world.assert_intact(app, client)


async def test_probes_in_the_name_are_stored_literally(
    app: BastionApp, client: Client, world: World
) -> None:
    """Attacker: SQL in the display name. Defence: bound parameters; stored literally."""
    for probe in PROBES:
        r = await client.patch(
            "/api/users/me", json={"name": probe}, headers=world.mallory["headers"]
        )
        assert r.status_code == 200, r.text
        assert r.json()["name"] == probe.strip()
        me = await client.get("/api/users/me", headers=world.mallory["headers"])
        assert me.json()["name"] == probe.strip()
    alice = await client.get("/api/users/me", headers=world.alice["headers"])
    assert alice.json()["name"] == "Test User"
    await world.assert_intact(app, client)


async def test_probes_in_the_address_are_stored_literally(
    app: BastionApp, client: Client, world: World
) -> None:
    """Attacker: SQL in the shipping address. Defence: bound parameters; stored literally."""
    ids = await client.product_ids()
    for probe in PROBES:
        body = order_body(ids[:1], shippingAddress=address(line1=probe + " 12345", city=probe))
        r = await client.post("/api/orders", json=body, headers=world.mallory["headers"])
        assert r.status_code == 201, r.text
        stored = await client.get(f"/api/orders/{r.json()['id']}", headers=world.mallory["headers"])
        assert stored.json()["shippingAddress"]["line1"] == (probe + " 12345").strip()
        assert stored.json()["shippingAddress"]["city"] == probe.strip()
        r = await client.post(
            f"/api/orders/{r.json()['id']}/cancel", headers=world.mallory["headers"]
        )
        assert r.status_code == 200
    counted = await client.get("/api/orders?limit=100", headers=world.mallory["headers"])
    assert len(counted.json()["items"]) == len(PROBES) + 1
    await app.services.db.execute(
        "DELETE FROM orders WHERE user_id = $1 AND id <> $2",
        world.mallory["id"],
        world.mallory_order["id"],
    )
    await world.assert_intact(app, client)


@pytest.mark.parametrize("field", ["promoCode", "productId", "quantity", "country", "postcode"])
async def test_probes_in_order_fields_are_refused_without_creating_anything(
    app: BastionApp, client: Client, world: World, field: str
) -> None:
    """Attacker: SQL in typed order fields. Defence: strict validation; 400, nothing created."""
    ids = await client.product_ids()
    for probe in PROBES:
        body = order_body(ids[:1])
        if field == "promoCode":
            body["promoCode"] = probe
        elif field in ("productId", "quantity"):
            body["items"][0][field] = probe
        else:
            body["shippingAddress"][field] = probe
        r = await client.post("/api/orders", json=body, headers=world.mallory["headers"])
        assert r.status_code == 400, r.text
    await world.assert_intact(app, client)


async def test_probes_in_path_ids_find_nothing(
    app: BastionApp, client: Client, world: World
) -> None:
    """Attacker: SQL in the ids in paths. Defence: ids must be UUIDs; 404, nothing found."""
    for probe in PROBES:
        for method, path in (
            ("GET", "/api/orders/{}"),
            ("POST", "/api/orders/{}/cancel"),
            ("GET", "/api/products/{}"),
            ("DELETE", "/api/auth/sessions/{}"),
        ):
            r = await client.request(
                method, path.format(quote(probe, safe="")), headers=world.mallory["headers"]
            )
            _no_500(r)
            assert r.status_code in (404, 405), (probe, path, r.text)
    await world.assert_intact(app, client)


async def test_probes_in_the_cursor_and_limit_are_refused(
    app: BastionApp, client: Client, world: World
) -> None:
    """Attacker: SQL in the cursor or the limit. Defence: both are parsed strictly; 400."""
    for probe in PROBES:
        wrapped = [
            probe,
            base64.urlsafe_b64encode(orjson.dumps([probe])).decode(),
            base64.urlsafe_b64encode(orjson.dumps(["2020-01-01T00:00:00Z", probe])).decode(),
        ]
        for path in ("/api/orders", "/api/products"):
            for cursor in wrapped:
                r = await client.get(
                    path, params={"cursor": cursor}, headers=world.mallory["headers"]
                )
                assert r.status_code == 400, r.text
            r = await client.get(path, params={"limit": probe}, headers=world.mallory["headers"])
            assert r.status_code == 400, r.text
    await world.assert_intact(app, client)


@pytest.mark.parametrize(
    "order_id",
    ["1", "abc", "00000000-0000-4000-8000-00000000000g", "%00", "..%2f..%2fetc", "' OR 1=1 --"],
)
async def test_an_order_id_that_is_not_a_uuid_is_simply_not_found(
    client: Client, order_id: str
) -> None:
    """Attacker: SQL, NUL or traversal as an order id. Defence: not a UUID, so simply 404."""
    user = await client.user()
    for method, suffix in (("GET", ""), ("POST", "/cancel")):
        r = await client.request(method, f"/api/orders/{order_id}{suffix}", headers=user["headers"])
        assert r.status_code == 404, (method, r.text)
        assert r.headers["content-type"] == "application/problem+json"

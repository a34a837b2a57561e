from tests.conftest import Client


async def test_products_are_seeded_in_development(client: Client) -> None:
    r = await client.get("/api/products")
    assert r.status_code == 200
    assert len(r.json()["items"]) >= 5


async def test_a_user_can_register_log_in_and_read_themselves(client: Client) -> None:
    user = await client.user()
    r = await client.get("/api/users/me", headers=user["headers"])
    assert r.status_code == 200
    assert r.json()["email"] == user["email"]

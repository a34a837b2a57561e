"""Register and log in: the password policy, one form for every email, and the access
token's claims. Weak passwords refused, identical failures for unknown emails and wrong
passwords, and server fields at registration are in tests/attacks/ (API2 and API3)."""

from __future__ import annotations

import hashlib
from typing import Any

import jwt
import pytest

from bastion.app import BastionApp
from tests.api.problem import assert_problem
from tests.conftest import PASSWORD, Client

STRONG_12 = "Tq7#vLp2@xZm"  # 12 characters, not a common password
STRONG_128 = hashlib.sha512(b"bastion").hexdigest()  # 128 characters


async def _register(client: Client, email: str, password: str = PASSWORD) -> Any:
    return await client.post(
        "/api/auth/register", json={"email": email, "password": password, "name": "Someone"}
    )


@pytest.mark.parametrize(
    "password",
    [STRONG_12, STRONG_128],
    ids=["12-chars", "128-chars"],
)
async def test_passwords_of_12_and_128_characters_are_accepted(
    client: Client, password: str
) -> None:
    assert len(password) in (12, 128)
    r = await _register(client, "bounds@example.com", password)
    assert r.status_code == 201, r.text
    await client.login("bounds@example.com", password)


@pytest.mark.parametrize(
    "variant",
    [
        " Alice@Example.COM ",
        "alice@example.com",
        "ALICE@EXAMPLE.COM",
        "\uff21\uff4c\uff49\uff43\uff45@\uff25\uff58\uff41\uff4d\uff50\uff4c\uff45.com",
    ],
    ids=["padded-mixed-case", "lower", "upper", "fullwidth"],
)
async def test_every_form_of_an_email_is_one_account(client: Client, variant: str) -> None:
    first = await _register(client, " Alice@Example.COM ")
    assert first.status_code == 201
    assert first.json()["email"] == "alice@example.com"
    again = await _register(client, variant)
    assert_problem(again, 409, "#/email")
    await client.login(variant)


async def test_a_duplicate_email_is_a_conflict(client: Client) -> None:
    assert (await _register(client, "dup@example.com")).status_code == 201
    assert_problem(await _register(client, "dup@example.com"), 409, "#/email")


@pytest.mark.parametrize(
    "email", ["", "plain", "@example.com", "a@b", "a b@example.com", "a@exa\nmple.com", "a@@b.com"]
)
async def test_a_malformed_email_is_refused_at_registration(client: Client, email: str) -> None:
    assert_problem(await _register(client, email), 400, "#/email")


async def test_the_access_token_is_a_15_minute_hs256_access_jwt(
    app: BastionApp, client: Client
) -> None:
    user = await client.register()
    r = await client.post("/api/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"accessToken", "tokenType", "expiresIn"}
    assert (body["tokenType"], body["expiresIn"]) == ("Bearer", 900)
    assert r.headers["cache-control"] == "no-store"
    token = body["accessToken"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    settings = app.services.settings
    assert settings.access_secret is not None
    claims = jwt.decode(
        token,
        settings.access_secret.get_secret_value(),
        algorithms=["HS256"],
        audience="bastion",
        issuer="bastion",
    )
    assert claims["typ"] == "access"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["sub"] == user["id"]
    assert {"sub", "iat", "exp", "jti", "sid"} <= claims.keys()
    assert "accessToken" not in r.headers.get("set-cookie", "")
    assert token not in r.headers.get("set-cookie", "")


@pytest.mark.parametrize(
    "body",
    [
        {"email": "a@example.com"},
        {"password": PASSWORD},
        {"email": "a@example.com", "password": PASSWORD, "remember": True},
        {"email": ["a@example.com"], "password": PASSWORD},
        {"email": "a@example.com", "password": 123456789012},
        {"email": "a\x00@example.com", "password": PASSWORD},
    ],
)
async def test_a_malformed_login_body_is_a_400(client: Client, body: dict[str, Any]) -> None:
    assert_problem(await client.post("/api/auth/login", json=body), 400)

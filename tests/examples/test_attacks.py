"""The same attacks on each example app (Starlette, FastAPI, Litestar), over the
in-process store and over Redis: each app is defended by ``bastion.security`` alone."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest

from bastion.security import Rate
from tests.examples.conftest import PASSWORD, MakeClient, bearer, login, register
from tests.security.conftest import ratelimit_fields

WRONG = "Wrong-Password-123456"


async def test_a_token_signed_with_alg_none_is_refused(make_client: MakeClient) -> None:
    client = await make_client()
    await register(client)
    tokens = await login(client)
    assert (await client.get("/me", headers=bearer(tokens))).status_code == 200
    header = jwt.get_unverified_header(tokens["access_token"])
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    forged = jwt.encode(claims, None, algorithm="none", headers={"kid": header["kid"]})
    answer = await client.get("/me", headers={"authorization": f"Bearer {forged}"})
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"


async def test_a_reused_refresh_token_revokes_its_family(make_client: MakeClient) -> None:
    client = await make_client()
    await register(client)
    first = await login(client)
    rotated = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert (await client.get("/me", headers=bearer(second))).status_code == 200
    reused = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    # The thief's replay ended the family: the legitimate newest tokens died with it.
    latest = await client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert latest.status_code == 401
    assert (await client.get("/me", headers=bearer(second))).status_code == 401


async def test_twenty_racing_refreshes_give_at_most_one_success(make_client: MakeClient) -> None:
    client = await make_client()
    await register(client)
    token = (await login(client))["refresh_token"]
    answers = await asyncio.gather(
        *(client.post("/auth/refresh", json={"refresh_token": token}) for _ in range(20))
    )
    statuses = Counter(a.status_code for a in answers)
    assert statuses[200] <= 1, statuses
    assert set(statuses) <= {200, 401}, statuses


async def test_an_access_token_dies_at_logout(make_client: MakeClient) -> None:
    client = await make_client()
    await register(client)
    tokens = await login(client)
    assert (await client.get("/me", headers=bearer(tokens))).status_code == 200
    ended = await client.post("/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert ended.status_code == 204
    assert (await client.get("/me", headers=bearer(tokens))).status_code == 401
    again = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 401


async def test_the_global_limit_refuses_with_its_ratelimit_fields(
    make_client: MakeClient,
) -> None:
    client = await make_client(global_rate=Rate(5, 60))
    for left in range(4, -1, -1):
        answer = await client.get("/me")
        assert answer.status_code == 401
        fields = ratelimit_fields(answer.headers)["global"]
        assert (fields["q"], fields["w"], fields["r"]) == (5, 60, left)
    refused = await client.get("/me")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    fields = ratelimit_fields(refused.headers)["global"]
    assert (fields["q"], fields["r"]) == (5, 0)
    assert 1 <= int(refused.headers["retry-after"]) <= 60


async def _wrong_logins(client: httpx.AsyncClient, emails: list[str]) -> Counter[int]:
    answers = await asyncio.gather(
        *(client.post("/auth/login", json={"email": e, "password": WRONG}) for e in emails)
    )
    return Counter(a.status_code for a in answers)


async def test_the_auth_limit_is_exact_under_50_concurrent_attempts(
    make_client: MakeClient,
) -> None:
    client = await make_client(login_per_ip=Rate(10, 900))
    statuses = await _wrong_logins(client, [f"user{i}@example.com" for i in range(50)])
    assert statuses == Counter({401: 10, 429: 40})


async def test_the_lockout_is_exact_under_50_concurrent_attempts(
    make_client: MakeClient,
) -> None:
    client = await make_client(login_per_account=Rate(5, 900))
    await register(client)
    statuses = await _wrong_logins(client, ["ada@example.com"] * 50)
    assert statuses == Counter({401: 5, 429: 45})
    locked = await client.post(
        "/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) >= 1


async def test_every_response_carries_the_security_headers_and_a_fresh_nonce(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    nonces = set()
    for path in ("/me", "/me", "/no-such-page"):
        answer = await client.get(path)
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "SAMEORIGIN"
        assert answer.headers["strict-transport-security"].startswith("max-age=31536000")
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert "server" not in answer.headers
        csp = answer.headers["content-security-policy"]
        nonce = csp.split("'nonce-", 1)[1].split("'", 1)[0]
        assert len(nonce) >= 22
        nonces.add(nonce)
    assert len(nonces) == 3


async def _chunks(size: int) -> AsyncIterator[bytes]:
    for _ in range(size // 256):
        yield b" " * 256


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_body_over_the_limit_is_refused_with_413(
    make_client: MakeClient, declared: bool
) -> None:
    client = await make_client(max_body_bytes=1024)
    headers = {"content-type": "application/json"}
    content = b" " * 4096 if declared else _chunks(4096)
    answer = await client.post("/auth/login", content=content, headers=headers)
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["x-content-type-options"] == "nosniff"
    if not declared:
        assert "content-length" not in answer.request.headers

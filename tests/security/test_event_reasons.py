"""What a security event's ``reason`` may say: fixed text chosen by Bastion, never what
a client wrote (an ``alg``, a ``typ``, a key id, a made-up field name), and no event at
all for what is no attack (a refresh from a browser that holds no session)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from bastion.app import BastionApp
from bastion.security.exceptions import InvalidToken
from bastion.security.secret import Secret
from bastion.security.tokens import TOKEN_REASONS, TokenCodec, TokenConfig
from tests.auth.conftest import (
    ACCESS_SECRET,
    REFRESH_COOKIE,
    REFRESH_SECRET,
    forge,
    forge_raw,
    record_events,
)
from tests.conftest import Client, client_for

# Short enough that the events' masking of long quoted words would let it through.
MARK = "x<b>1"


def _claims(typ: str) -> dict[str, Any]:
    now = 2_000_000_000 - 100
    return {
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 900,
        "iss": "bastion",
        "aud": "bastion",
        "typ": typ,
    }


def _forgeries(secret: str, typ: str) -> list[str]:
    """Tokens each carrying ``MARK`` where a client chooses the text."""
    key = secret.encode()
    header = {"alg": "HS256", "typ": "JWT", "kid": Secret(secret).key_id}
    claims = _claims(typ)
    return [
        forge_raw({**header, "alg": MARK}, claims, key),
        forge_raw({**header, "kid": MARK}, claims, key),
        forge_raw({**header, "jku": MARK}, claims, key),
        forge({**claims, "typ": MARK}, secret),
        forge({**claims, "aud": MARK}, secret),
        forge({**claims, "iss": MARK}, secret),
        forge({k: v for k, v in claims.items() if k != "jti"}, secret),
        forge({**claims, "sub": [MARK]}, secret),
        forge({**claims, "exp": MARK}, secret),
        forge(claims, f"{MARK}-{secret}"),
        f"{MARK}.{MARK}.{MARK}",
    ]


@pytest.mark.parametrize("token", _forgeries(ACCESS_SECRET, "access"))
def test_every_rejection_reason_is_fixed_text_whatever_the_token_says(token: str) -> None:
    codec = TokenCodec(
        TokenConfig(
            typ="access",
            keys=[Secret(ACCESS_SECRET)],
            issuer="bastion",
            audience="bastion",
            ttl=900,
            clock=lambda: 2_000_000_000,
        )
    )
    with pytest.raises(InvalidToken) as caught:
        codec.verify(token)
    assert caught.value.reason in TOKEN_REASONS
    assert MARK not in caught.value.reason


@pytest.mark.parametrize("index", range(len(_forgeries(ACCESS_SECRET, "access"))))
async def test_a_rejected_token_is_never_quoted_in_its_event(
    auth_app: BastionApp, index: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attacker: writes text of its choosing into a token's header and claims (a probe
    for log injection, or a marker to find in the admin's view). Defence: the event's
    reason is one of a fixed list; the client's text reaches no log line."""
    access = _forgeries(ACCESS_SECRET, "access")[index]
    refresh = _forgeries(REFRESH_SECRET, "refresh")[index]
    events = record_events(auth_app)
    async with client_for(auth_app) as c:
        r = await c.get("/api/users/me", headers={"Authorization": f"Bearer {access}"})
        assert r.status_code == 401
        r = await c.post("/api/auth/refresh", headers={"Cookie": f"{REFRESH_COOKIE}={refresh}"})
        assert r.status_code == 401
    reasons = [e["reason"] for e in events if e["event"] == "auth.token.rejected"]
    assert len(reasons) == 2, events
    assert all(reason in TOKEN_REASONS for reason in reasons), reasons
    assert MARK not in capsys.readouterr().out


async def test_a_refresh_without_a_cookie_is_a_401_and_no_event(client: Client) -> None:
    """Every visitor without a session who checks for one: not an attack, not an event."""
    events = record_events(client.app)
    r = await client.post("/api/auth/refresh")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert events == []
    # A cookie that is there and wrong is still an event.
    r = await client.post("/api/auth/refresh", headers={"Cookie": f"{REFRESH_COOKIE}=x.y.z"})
    assert r.status_code == 401
    assert [(e["event"], e["reason"]) for e in events] == [
        ("auth.token.rejected", "malformed token")
    ]


async def test_a_made_up_field_is_not_named_in_the_event(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attacker: a body with a field the schema does not declare, named with text of its
    choosing. Defence: the client is told which field; the event says ``*``."""
    events = record_events(client.app)
    made_up = "tokentokentoken-Correct-Horse"
    body = {"email": "a@example.com", "password": 5, "name": "A", made_up: 1}
    r = await client.post("/api/auth/register", json=body)
    assert r.status_code == 400
    assert {e["pointer"] for e in r.json()["errors"]} == {"#/password", f"#/{made_up}"}
    (event,) = events
    assert event["reason"] == "invalid fields: #/password, #/*"
    assert made_up not in capsys.readouterr().out

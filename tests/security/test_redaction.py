"""Redaction at the logging boundary: no password, token, cookie or Authorization header
reaches a log line, whatever a client sends and wherever it puts it.

The last test is the attacker's view: a real ``bastion serve`` is sent secrets in bodies,
headers, cookies, query strings and paths, through every path that logs an event, and
then everything the process printed (and every event it stored) is searched for them.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.security.events import SecurityEventLog, json_formatter
from bastion.security.redaction import REDACTED, redact, redact_text
from tests.browser.live_server import live_server

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"GET /api/users/{JWT}", JWT),
        (f"token in a query ?t={JWT}&x=1", JWT),
        (f"{JWT}.extra-jwe-part", "SflKxwRJSMeKKF2QT4fw"),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
        ("sent bearer Opaque-Token-123 with it", "Opaque-Token-123"),
        ("Cookie: a=1; __Secure-refreshToken=r3fr3sh; sid=s3ss10n", "s3ss10n"),
        ("set-cookie: __Secure-deviceToken=d3v1c3; Path=/api/auth", "d3v1c3"),
        ("__Host-session=h0st-c00k13", "h0st-c00k13"),
        ("password=Hunter2-Hunter2", "Hunter2-Hunter2"),
        ("newPassword: Hunter2-Hunter2", "Hunter2-Hunter2"),
        ('{"currentPassword": "correct horse battery"}', "correct horse battery"),
        ("{'api_key': 'k-123456'}", "k-123456"),
        ("/login?user=a&passwd=Hunter2-Hunter2&next=/", "Hunter2-Hunter2"),
        ("/x/password%3DHunter2-Hunter2", "Hunter2-Hunter2"),
        ("client_secret=s3cr3t-value", "s3cr3t-value"),
        ("refresh_token: rt-0123456789", "rt-0123456789"),
        (
            "1 validation error\n  String too long [type=string_too_long, "
            "input_value='Hunter2-Hunter2', input_type=str]",
            "Hunter2-Hunter2",
        ),
        ('input_value="it\'s Hunter2-Hunter2"', "Hunter2-Hunter2"),
        # A field cut short inside a quoted secret (events keep 512 characters).
        ('{"newPassword": "correct horse batt', "correct horse batt"),
        ("{'token': 'rt-01234567", "rt-01234567"),
        ('input_value="Hunter2-Hunt', "Hunter2-Hunt"),
        # Whatever is glued in front of a JWT or a prefixed cookie.
        (f"jwt_{JWT}", "SflKxwRJSMeKKF2QT4fw"),
        ("a; x__Secure-deviceToken=d3v1c3", "d3v1c3"),
    ],
)
def test_credential_shaped_text_is_masked_wherever_it_appears(text: str, secret: str) -> None:
    masked = redact_text(text)
    assert secret not in masked
    assert REDACTED in masked


@pytest.mark.parametrize(
    "text",
    [
        "auth.login.failed",
        "auth.token.rejected",
        "/api/orders/{order_id}",
        "/api/auth/sessions/{session_id}",
        "token expired",
        "refresh token not current",
        "2026-01-01T10:00:00.000000Z",
        "invalid fields: #/items/0/quantity, #/shippingAddress/postcode",
    ],
)
def test_ordinary_log_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


# Text built to make a backtracking pattern retry from every position: the words the
# masking looks for, repeated with no separator after them (or with a quote never
# closed). The pattern this replaced took seconds on 1 KiB of some of these and grew
# with the cube of the length; 64 KiB of any of them would have taken hours.
ADVERSARIAL = [
    "token" * 13_000,
    "tok-en" * 11_000,
    "a" * 65_000 + "password",
    "session" + "-" * 65_000,
    "tokenx" * 11_000 + "=",
    "eyJ" * 22_000,
    "eyJ." * 16_000,
    "__Secure-" * 7_000,
    "cookie" * 11_000,
    "Authorization" * 5_000,
    "bearer " * 9_000,
    "input_value=" * 5_000,
    'password="\\' * 5_000,
    "x=eyJ." * 11_000,
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=lambda t: repr(t[:14]))
def test_masking_runs_in_linear_time_on_text_built_to_make_it_backtrack(text: str) -> None:
    """Attacker: gets text like this into a log line (a field name, a path, a token's
    header), so that masking it holds the event loop. Defence: no part of the pattern
    can retry a word it has passed; 64 KiB takes milliseconds. The bound below is
    thousands of times what it takes, and hours below what backtracking would."""
    secret = " password=Hunter2-Hunter2"
    started = time.perf_counter()
    masked = redact_text(text + secret)
    elapsed = time.perf_counter() - started
    assert "Hunter2-Hunter2" not in masked
    assert elapsed < 2.0, f"{elapsed:.2f} s to mask {len(text)} characters"


def test_values_under_secret_names_are_dropped_at_any_depth() -> None:
    record = {
        "event": "login",
        "password": "Hunter2-Hunter2",
        "body": {"email": "a@b.co", "newPassword": "x", "items": [{"accessToken": "t"}]},
        "headers": [("Authorization", "x"), {"Cookie": "c", "Set-Cookie": "s", "accept": "*/*"}],
        "X-Api-Key": "k",
        "client_secret": "s",
        "count": 3,
        "ok": True,
        "none": None,
    }
    assert redact(record) == {
        "event": "login",
        "password": REDACTED,
        "body": {"email": "a@b.co", "newPassword": REDACTED, "items": [{"accessToken": REDACTED}]},
        "headers": [
            ["Authorization", "x"],
            {"Cookie": REDACTED, "Set-Cookie": REDACTED, "accept": "*/*"},
        ],
        "X-Api-Key": REDACTED,
        "client_secret": REDACTED,
        "count": 3,
        "ok": True,
        "none": None,
    }


class Leaky:
    def __str__(self) -> str:
        return f"Leaky(password=Hunter2-Hunter2, token={JWT})"


@pytest.mark.parametrize(
    "value",
    [Leaky(), ValueError(f"bad token {JWT}"), f"Bearer {JWT}".encode(), {f"Bearer {JWT}"}],
    ids=["object", "exception", "bytes", "set"],
)
def test_objects_are_turned_into_masked_text_not_passed_through(value: Any) -> None:
    out = json.dumps(redact({"detail": value}))
    assert "Hunter2" not in out
    assert JWT not in out


def format_record(message: str, *args: Any, exc: BaseException | None = None) -> str:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    record = logging.LogRecord("bastion.test", logging.ERROR, __file__, 1, message, args, exc_info)
    return json_formatter().format(record)


def test_standard_library_records_are_redacted_messages_arguments_and_tracebacks() -> None:
    try:
        raise RuntimeError(f"cannot parse password=Hunter2-Hunter2 near {JWT}")
    except RuntimeError as error:
        line = format_record("unhandled error on %s %s", "GET", f"/api/x/{JWT}", exc=error)
    parsed = json.loads(line)
    assert "Hunter2" not in line
    assert JWT not in line
    assert parsed["event"] == f"unhandled error on GET /api/x/{REDACTED}"
    assert "RuntimeError: cannot parse [redacted]" in parsed["exception"]
    assert parsed["level"] == "error"
    assert parsed["logger"] == "bastion.test"


def test_a_security_event_is_redacted_on_its_way_out() -> None:
    stream = io.StringIO()
    SecurityEventLog(stream=stream).emit(
        "auth.token.rejected",
        {
            "type": "http",
            "method": "GET",
            "path": f"/api/{JWT}",
            "headers": [(b"authorization", f"Bearer {JWT}".encode())],
            "client": ("192.0.2.1", 1),
        },
        reason=f"token rejected: {JWT} password=Hunter2-Hunter2",
    )
    assert JWT not in stream.getvalue()
    assert "Hunter2" not in stream.getvalue()
    assert json.loads(stream.getvalue())["reason"] == "token rejected: [redacted] [redacted]"


# ----------------------------------------------------------------- the attacker's view

PASSWORD = "Secret-Password-Alpha-7391"
SECRETS = {
    "wrong": "Wrong-Password-Bravo-2946",
    "malformed": "Malformed-Json-Charlie-5820",
    "weak": "iloveyou1234567",
    "forged": "Forged-Bearer-Echo-8812",
    "basic": "Basic-Foxtrot-1111-user",
    "cookie": "Cookie-Golf-3333-value",
    "query": "Query-Hotel-4444-value",
    "path": "Path-India-5555-value",
    "path2": "Path-Kilo-7777-value",
    "header": "Header-Mike-9999-value",
    "body": "Body-Papa-2222-value",
    "alg": "Alg-Quebec-3333-value",
    "current": "Current-Romeo-4444-value",
    "large": "Large-Sierra-5555-value",
    "plain": "Plain-Tango-6666-value",
    "agent": "Agent-Uniform-7777-value",
    "new": "New-Password-Victor-8888",
}


def b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def cookie_from(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        match = re.match(rf"{re.escape(name)}=([^;]+)", header)
        if match:
            return match.group(1)
    raise AssertionError(f"no {name} cookie in {response.headers.get_list('set-cookie')}")


class Attacker:
    """Requests from one address (the server trusts loopback's X-Forwarded-For), so each
    part of the attack gets its own budget under the global limit."""

    def __init__(self, url: str, ip: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"X-Forwarded-For": ip}, timeout=10)

    def login(self, email: str, password: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(
            "/api/auth/login", json={"email": email, "password": password}, **kwargs
        )

    def close(self) -> None:
        self.http.close()


def test_no_secret_a_client_sends_appears_in_anything_the_process_prints(tmp_path: Path) -> None:
    env = {
        "BASTION_TRUSTED_PROXIES": "127.0.0.1/32",
        "BASTION_RATE_LIMIT_GLOBAL": "40/15minutes",
        "BASTION_LOCKOUT": "3/15minutes",
    }
    secrets = set(SECRETS.values()) | {PASSWORD}
    with live_server(tmp_path, env) as server:
        a = Attacker(server.url, "198.51.100.1")
        email = "victim@example.com"
        r = a.http.post(
            "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "Victim"}
        )
        assert r.status_code == 201, r.text
        # A weak password refused at registration, another sent with an unknown field.
        r = a.http.post(
            "/api/auth/register",
            json={"email": "weak@example.com", "password": SECRETS["weak"], "name": "W"},
        )
        assert r.status_code == 400
        r = a.http.post(
            "/api/auth/register",
            json={
                "email": "x@example.com",
                "password": PASSWORD,
                "name": "X",
                "token": SECRETS["body"],
            },
        )
        assert r.status_code == 400

        login = a.login(email, PASSWORD, headers={"User-Agent": f"password={SECRETS['agent']}"})
        assert login.status_code == 200, login.text
        access = login.json()["accessToken"]
        refresh = cookie_from(login, "__Secure-refreshToken")
        device = cookie_from(login, "__Secure-deviceToken")
        secrets |= {access, refresh, device}
        bearer = {"Authorization": f"Bearer {access}"}

        # Rotate once, then present the old refresh token again: reuse.
        rotated = a.http.post(
            "/api/auth/refresh", headers={"Cookie": f"__Secure-refreshToken={refresh}"}
        )
        assert rotated.status_code == 200
        secrets |= {rotated.json()["accessToken"], cookie_from(rotated, "__Secure-refreshToken")}
        reused = a.http.post(
            "/api/auth/refresh",
            headers={
                "Cookie": f"__Secure-refreshToken={refresh}; theme=dark; sid={SECRETS['cookie']}"
            },
        )
        assert reused.status_code == 401
        assert a.http.get("/api/users/me", headers=bearer).status_code == 401  # all revoked

        # Wrong, malformed, oversized and mistyped credentials.
        b = Attacker(server.url, "198.51.100.2")
        fresh = b.login(email, PASSWORD)
        assert fresh.status_code == 200
        secrets.add(fresh.json()["accessToken"])
        fresh_bearer = {"Authorization": f"Bearer {fresh.json()['accessToken']}"}
        # A wrong current password on a password change is a failure of the account's
        # lockout too (3 here): one of them, then two wrong logins, then locked out.
        r = b.http.post(
            "/api/users/me/password",
            json={"currentPassword": SECRETS["current"], "newPassword": SECRETS["new"]},
            headers=fresh_bearer,
        )
        assert r.status_code == 400
        for _ in range(2):
            assert b.login(email, SECRETS["wrong"]).status_code == 401
        assert b.login(email, SECRETS["wrong"]).status_code == 429  # locked out
        malformed = f'{{"email": "{email}", "password": "{SECRETS["malformed"]}",'
        r = b.http.post(
            "/api/auth/login", content=malformed, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400
        r = b.http.post(
            "/api/auth/login",
            content=json.dumps({"email": email, "password": SECRETS["large"] * 1000}),
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 413
        r = b.http.post(
            "/api/auth/login",
            content=f"email={email}&password={SECRETS['plain']}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 415

        # Tokens and credentials in headers, query strings and paths.
        c = Attacker(server.url, "198.51.100.3")
        forged_alg = f"{b64url({'alg': SECRETS['alg'], 'typ': 'JWT'})}.{b64url({'sub': 'x'})}.sig"
        basic = base64.b64encode(f"admin:{SECRETS['basic']}".encode()).decode()
        secrets |= {basic}
        attempts = [
            ("/api/users/me", {"Authorization": f"Bearer {SECRETS['forged']}"}),
            ("/api/users/me", {"Authorization": f"Bearer {forged_alg}"}),
            ("/api/users/me", {"Authorization": f"Basic {basic}"}),
            (
                "/api/users/me",
                {"Authorization": f"Bearer {access}", "X-Api-Key": SECRETS["header"]},
            ),
            (f"/api/users/me?access_token={access}&password={SECRETS['query']}", {}),
            (f"/api/orders?token={access}", {"Authorization": f"Bearer {access}"}),
            (f"/api/orders/{access}", fresh_bearer),
            (f"/api/orders/{SECRETS['path']}/cancel", fresh_bearer),
            (f"/api/{SECRETS['path2']}/password={SECRETS['path2']}", fresh_bearer),
            ("/api/admin/security-events", fresh_bearer),
            ("/api/auth/sessions", {"Cookie": f"__Secure-refreshToken={refresh}"}),
        ]
        statuses = [c.http.get(path, headers=headers).status_code for path, headers in attempts]
        assert 200 not in statuses

        # The same again from an address whose budget is spent: refused before routing.
        d = Attacker(server.url, "198.51.100.4")
        for _ in range(40):
            d.http.get("/api/products")
        limited = [d.http.get(path, headers=headers).status_code for path, headers in attempts]
        assert set(limited) == {429}
        for attacker in (a, b, c, d):
            attacker.close()

    printed = server.printed()
    events = [json.loads(line) for line in printed.splitlines() if '"kind": "security"' in line]
    names = {e["event"] for e in events}
    assert names >= {
        "auth.login.succeeded",
        "auth.login.failed",
        "auth.lockout",
        "auth.refresh.reuse_detected",
        "auth.token.rejected",
        "authz.denied",
        "input.rejected",
        "ratelimit.exceeded",
    }
    # The forged alg is not quoted at all: its event gives a fixed reason.
    assert any(e.get("reason") == "algorithm not accepted" for e in events)
    with closing(sqlite3.connect(server.database)) as db:
        rows = db.execute("SELECT * FROM security_events").fetchall()
    assert len(rows) == len(events)  # every event logged was also stored, and is searched
    stored = json.dumps(rows)
    leaked = sorted(s for s in secrets if s in printed or s in stored)
    assert leaked == [], f"leaked into the output: {leaked}"
    assert "eyJ" not in printed
    assert "eyJ" not in stored

"""Security events: one JSON line on stdout per event of the contract, with who, where and
which request, the same record stored, and the admin's paged view of what was stored."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import httpx
import pytest

from bastion.api.event_names import EVENT_NAMES, EventName
from bastion.app import BastionApp
from bastion.db import users
from bastion.security.asgi import Message, Receive, Scope, Send
from bastion.security.events import (
    REQUEST_ID_KEY,
    FirstPerWindow,
    SecurityEventLog,
    json_formatter,
)
from bastion.security.request_id import RequestIdMiddleware
from tests.auth.conftest import record_events
from tests.conftest import PASSWORD, Client, client_for

CONTRACT_EVENTS = (
    "auth.login.succeeded",
    "auth.login.failed",
    "auth.lockout",
    "auth.refresh.reuse_detected",
    "auth.token.rejected",
    "authz.denied",
    "input.rejected",
    "ratelimit.exceeded",
    "auth.password.changed",
    "auth.session.ended",
)
REQUIRED = {"ts", "event", "ip", "method", "path", "requestId"}
STORED = {"id", "ts", "event", "ip", "userId", "method", "path", "requestId", "reason"}
IP = "203.0.113.7"
WRONG = "Wrong-Password-123456"
ADDRESS = {"line1": "1 Infinite Loop", "city": "Cupertino", "postcode": "95014", "country": "US"}


def event_lines(printed: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in printed.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("kind") == "security"]


@dataclass
class Scene:
    """One app under test, the events it stored, and the request that should log one."""

    start_app: Any
    app: BastionApp | None = None
    recorded: list[dict[str, Any]] = field(default_factory=list)

    async def start(self, **settings: Any) -> Client:
        self.app = await self.start_app(**settings)
        self.recorded = record_events(self.app)
        return client_for(self.app, IP)


@dataclass(frozen=True)
class Expected:
    response: httpx.Response
    user_id: str | None
    method: str
    path: str


Trigger = Callable[[Scene], Awaitable[Expected]]


async def login_succeeded(scene: Scene) -> Expected:
    async with await scene.start() as c:
        user = await c.register()
        r = await c.post("/api/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert r.status_code == 200
    return Expected(r, user["id"], "POST", "/api/auth/login")


async def login_failed(scene: Scene) -> Expected:
    async with await scene.start() as c:
        user = await c.register()
        r = await c.post("/api/auth/login", json={"email": user["email"], "password": WRONG})
    assert r.status_code == 401
    return Expected(r, user["id"], "POST", "/api/auth/login")


async def lockout(scene: Scene) -> Expected:
    async with await scene.start(lockout="2/15minutes") as c:
        user = await c.register()
        for _ in range(2):
            await c.post("/api/auth/login", json={"email": user["email"], "password": WRONG})
        r = await c.post("/api/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert r.status_code == 429
    return Expected(r, None, "POST", "/api/auth/login")


async def refresh_reuse(scene: Scene) -> Expected:
    async with await scene.start() as c:
        user = await c.user()
        old = c.cookies["__Secure-refreshToken"]
        assert (await c.post("/api/auth/refresh")).status_code == 200
        r = await c.post("/api/auth/refresh", headers={"Cookie": f"__Secure-refreshToken={old}"})
    assert r.status_code == 401
    return Expected(r, user["id"], "POST", "/api/auth/refresh")


async def token_rejected(scene: Scene) -> Expected:
    async with await scene.start() as c:
        r = await c.get("/api/users/me", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401
    return Expected(r, None, "GET", "/api/users/me")


async def authz_denied_role(scene: Scene) -> Expected:
    async with await scene.start() as c:
        user = await c.user()
        r = await c.get("/api/admin/security-events", headers=user["headers"])
    assert r.status_code == 403
    return Expected(r, user["id"], "GET", "/api/admin/security-events")


async def authz_denied_other_users_order(scene: Scene) -> Expected:
    async with await scene.start() as c:
        owner, other = await c.user(), await c.user()
        items = [{"productId": (await c.product_ids())[0], "quantity": 1}]
        order = await c.post(
            "/api/orders",
            json={"items": items, "shippingAddress": ADDRESS},
            headers=owner["headers"],
        )
        assert order.status_code == 201, order.text
        r = await c.get(f"/api/orders/{order.json()['id']}", headers=other["headers"])
    assert r.status_code == 404
    return Expected(r, other["id"], "GET", "/api/orders/{order_id}")


async def input_rejected(scene: Scene) -> Expected:
    async with await scene.start() as c:
        r = await c.post("/api/auth/login", json={"email": 5, "password": ["x"]})
    assert r.status_code == 400
    return Expected(r, None, "POST", "/api/auth/login")


async def ratelimit_exceeded(scene: Scene) -> Expected:
    async with await scene.start(rate_limit_global="1/minute") as c:
        await c.get("/api/products")
        r = await c.get("/api/products?limit=3")
    assert r.status_code == 429
    return Expected(r, None, "GET", "/api/products")


async def password_changed(scene: Scene) -> Expected:
    async with await scene.start() as c:
        user = await c.user()
        body = {"currentPassword": PASSWORD, "newPassword": "Another-Horse-Battery-77"}
        r = await c.post("/api/users/me/password", json=body, headers=user["headers"])
    assert r.status_code == 204
    return Expected(r, user["id"], "POST", "/api/users/me/password")


async def session_ended_by_logout(scene: Scene) -> Expected:
    async with await scene.start() as c:
        user = await c.user()
        r = await c.post("/api/auth/logout")
    assert r.status_code == 204
    return Expected(r, user["id"], "POST", "/api/auth/logout")


async def session_ended_by_logout_all(scene: Scene) -> Expected:
    async with await scene.start() as c:
        user = await c.user()
        r = await c.post("/api/auth/logout-all", headers=user["headers"])
    assert r.status_code == 204
    return Expected(r, user["id"], "POST", "/api/auth/logout-all")


async def session_ended_by_deletion(scene: Scene) -> Expected:
    async with await scene.start() as c:
        user = await c.user()
        sid = (await c.get("/api/auth/sessions", headers=user["headers"])).json()["items"][0]["id"]
        r = await c.delete(f"/api/auth/sessions/{sid}", headers=user["headers"])
    assert r.status_code == 204
    return Expected(r, user["id"], "DELETE", "/api/auth/sessions/{session_id}")


async def session_ended_by_admin(scene: Scene) -> Expected:
    from tests.api.test_admin_users import make_admin

    async with await scene.start() as c:
        user = await c.user()
        assert scene.app is not None
        admin = await make_admin(scene.app, c)
        r = await c.delete(f"/api/admin/users/{user['id']}/sessions", headers=admin)
    assert r.status_code == 204
    return Expected(r, user["id"], "DELETE", "/api/admin/users/{user_id}/sessions")


async def session_replaced_by_login(scene: Scene) -> Expected:
    async with await scene.start() as c:
        user = await c.user()  # the jar now holds this session's refresh cookie
        body = {"email": user["email"], "password": PASSWORD}
        r = await c.post("/api/auth/login", json=body)
    assert r.status_code == 200
    return Expected(r, user["id"], "POST", "/api/auth/login")


TRIGGERS: list[tuple[str, Trigger]] = [
    ("auth.login.succeeded", login_succeeded),
    ("auth.login.failed", login_failed),
    ("auth.lockout", lockout),
    ("auth.refresh.reuse_detected", refresh_reuse),
    ("auth.token.rejected", token_rejected),
    ("authz.denied", authz_denied_role),
    ("authz.denied", authz_denied_other_users_order),
    ("input.rejected", input_rejected),
    ("ratelimit.exceeded", ratelimit_exceeded),
    ("auth.password.changed", password_changed),
    ("auth.session.ended", session_ended_by_logout),
    ("auth.session.ended", session_ended_by_logout_all),
    ("auth.session.ended", session_ended_by_deletion),
    ("auth.session.ended", session_ended_by_admin),
    ("auth.session.ended", session_replaced_by_login),
]


def test_the_event_names_are_the_contracts() -> None:
    assert EVENT_NAMES == CONTRACT_EVENTS == get_args(EventName)
    assert {name for name, _ in TRIGGERS} == set(CONTRACT_EVENTS)


@pytest.mark.parametrize(("event", "trigger"), TRIGGERS, ids=lambda v: getattr(v, "__name__", v))
async def test_each_contract_event_is_one_json_line_and_one_stored_record(
    start_app: Any, capsys: pytest.CaptureFixture[str], event: str, trigger: Trigger
) -> None:
    scene = Scene(start_app)
    expected = await trigger(scene)
    request_id = expected.response.headers["x-request-id"]
    lines = [
        line
        for line in event_lines(capsys.readouterr().out)
        if line["event"] == event and line["requestId"] == request_id
    ]
    assert len(lines) == 1, lines
    line = lines[0]
    assert set(line) >= REQUIRED
    assert (line["ip"], line["method"], line["path"]) == (IP, expected.method, expected.path)
    assert line.get("userId") == expected.user_id
    assert "user_id" not in line
    assert line["ts"].endswith("Z")
    stamped = datetime.fromisoformat(line["ts"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - stamped) < timedelta(minutes=5)
    if event != "auth.login.succeeded":
        assert isinstance(line["reason"], str)
        assert line["reason"]

    stored = [r for r in scene.recorded if r["event"] == event and r["request_id"] == request_id]
    assert len(stored) == 1
    record = stored[0]
    assert (record["ip"], record["path"], record["user_id"]) == (
        IP,
        line["path"],
        line.get("userId"),
    )
    assert record["reason"] == line.get("reason")


@pytest.mark.parametrize(
    ("path", "token", "logged"),
    [
        (f"/api/orders/{uuid.uuid4()}", "Bearer nope", "/api/orders/{order_id}"),
        (f"/api/orders/{uuid.uuid4()}/cancel", None, "/api/orders/{order_id}/cancel"),
        ("/api/Correct-Horse-Battery-42/x", None, "/api/*"),
        ("/api/Correct-Horse-Battery-42", None, "/api/*"),
    ],
)
async def test_events_name_the_route_never_the_path_the_client_sent(
    start_app: Any, capsys: pytest.CaptureFixture[str], path: str, token: str | None, logged: str
) -> None:
    app = await start_app(rate_limit_global="1/minute")
    async with client_for(app, IP) as c:
        if token is None:  # spend the budget, so the request below is refused before routing
            await c.get("/api/products")
            r = await c.post(path) if path.endswith("cancel") else await c.get(path)
            assert r.status_code == 429
        else:
            r = await c.get(path, headers={"Authorization": token})
            assert r.status_code == 401
    printed = capsys.readouterr().out
    [line] = [e for e in event_lines(printed) if e["requestId"] == r.headers["x-request-id"]]
    assert line["path"] == logged
    for segment in path.split("/"):
        if len(segment) > 8 and segment not in logged:
            assert segment not in printed


# ------------------------------------------------------------------- the admin's view


async def make_admin(app: BastionApp, client: Client) -> dict[str, str]:
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    await users.create_user(
        app.services.db,
        user_id=str(uuid.uuid4()),
        email=email,
        name="Admin",
        password_hash=await app.services.hasher.hash(PASSWORD),
        role="admin",
        now=datetime.now(UTC),
    )
    return {"Authorization": f"Bearer {await client.login(email)}"}


async def all_pages(client: Client, headers: dict[str, str], limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        url = f"/api/admin/security-events?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        r = await client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        assert set(page) == {"items", "nextCursor"}
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            return items
    raise AssertionError("the pages never ended")


async def stored_events(client: Client, headers: dict[str, str], want: set[str]) -> None:
    """Wait for the writer, which stores events in batches off the request path."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        seen = {e["requestId"] for e in await all_pages(client, headers, 100)}
        if want <= seen:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the events were never stored")


async def test_the_admin_pages_through_stored_events_newest_first(start_app: Any) -> None:
    app = await start_app()
    async with client_for(app) as client, client_for(app, IP) as attacker:
        admin = await make_admin(app, client)
        user = await client.user()
        request_ids = set()
        for n in range(5):
            r = await attacker.get("/api/users/me", headers={"Authorization": f"Bearer x{n}"})
            request_ids.add(r.headers["x-request-id"])
        r = await client.get("/api/admin/security-events", headers=user["headers"])
        assert r.status_code == 403
        request_ids.add(r.headers["x-request-id"])
        await stored_events(client, admin, request_ids)

        items = await all_pages(client, admin, limit=2)
        everything = await all_pages(client, admin, limit=100)
    assert items == everything
    assert len({e["id"] for e in items}) == len(items) >= 8  # 2 logins, 5 rejections, 1 denial
    for item in items:
        assert set(item) == STORED
        assert item["ts"].endswith("Z")
    order = [(e["ts"], e["id"]) for e in items]
    assert order == sorted(order, reverse=True)
    mine = {e["requestId"]: e for e in items if e["requestId"] in request_ids}
    assert len(mine) == 6
    denied = [e for e in mine.values() if e["event"] == "authz.denied"]
    assert [(e["userId"], e["path"]) for e in denied] == [
        (user["id"], "/api/admin/security-events")
    ]
    rejected = [e for e in mine.values() if e["event"] == "auth.token.rejected"]
    assert {(e["ip"], e["userId"], e["method"]) for e in rejected} == {(IP, None, "GET")}


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "limit=abc", "cursor=not-base64!", "cursor=eyJ"]
)
async def test_bad_paging_of_security_events_is_a_400(start_app: Any, query: str) -> None:
    app = await start_app()
    async with client_for(app) as client:
        admin = await make_admin(app, client)
        r = await client.get(f"/api/admin/security-events?{query}", headers=admin)
    assert r.status_code == 400


# ------------------------------------------------------------------- the log on its own


def scope(**extra: Any) -> Scope:
    return {
        "type": "http",
        "method": "GET",
        "path": "/api/things/secret-ish",
        "headers": [],
        "client": ("198.51.100.4", 5000),
        REQUEST_ID_KEY: "req-1",
        **extra,
    }


def emit_to_text(log_kwargs: dict[str, Any], **emit: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    stream = io.StringIO()
    stored: list[dict[str, Any]] = []
    log = SecurityEventLog(sink=stored.append, stream=stream, **log_kwargs)
    log.emit(emit.pop("event", "authz.denied"), emit.pop("scope", scope()), **emit)
    [line] = stream.getvalue().splitlines()
    return json.loads(line), stored[0]


def test_a_line_leads_with_time_and_event_and_omits_what_is_unknown() -> None:
    line, stored = emit_to_text({})
    assert list(line)[:2] == ["ts", "event"]
    assert "userId" not in line
    assert "reason" not in line
    assert (line["ip"], line["path"], line["requestId"]) == ("198.51.100.4", "/api/*", "req-1")
    assert stored["user_id"] is None
    assert isinstance(stored["ts"], datetime)
    assert stored["ts"].isoformat().replace("+00:00", "Z")[:19] == line["ts"][:19]


def test_route_path_names_the_template_before_routing() -> None:
    line, _ = emit_to_text({"route_path": lambda s: "/api/things/{name}"})
    assert line["path"] == "/api/things/{name}"
    line, _ = emit_to_text({"route_path": lambda s: None})
    assert line["path"] == "/api/*"


def test_what_a_client_controls_is_cleaned_before_it_is_logged_or_stored() -> None:
    line, stored = emit_to_text(
        {},
        user_id="not-a-uuid'); DROP TABLE users; --",
        reason="algorithm 'Correct-Horse-Battery-42' is not accepted\x00\n" + "x" * 2000,
        scope=scope(method="GET\r\nX-Injected: 1", **{REQUEST_ID_KEY: "r\x00id"}),
    )
    assert "userId" not in line
    assert stored["user_id"] is None
    for value in (line["reason"], stored["reason"], line["method"], line["requestId"]):
        assert value.isprintable()
        assert "\x00" not in value
        assert len(value) <= 512
    assert "Correct-Horse-Battery-42" not in line["reason"]
    assert line["reason"].startswith("algorithm [redacted] is not accepted\\x00\\n")


async def test_a_log_line_written_while_serving_a_request_carries_its_request_id() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("bastion.test.request-id")
    logger.addHandler(handler)
    logger.propagate = False
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        logger.warning("inside %s", scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(message: Message) -> None:
        sent.append(message)

    try:
        await RequestIdMiddleware(app)(scope(), receive, send)
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    header = dict(sent[0]["headers"])[b"x-request-id"].decode()
    assert inside["requestId"] == header
    assert inside["event"] == "inside /api/things/secret-ish"
    assert "requestId" not in outside


async def test_every_response_gets_its_own_request_id_and_a_client_cannot_choose_it(
    client: Client,
) -> None:
    ids = set()
    for path in ("/api/products", "/api/nope", "/", "/healthz"):
        r = await client.get(path, headers={"X-Request-ID": "attacker-chosen-id"})
        assert r.headers.get_list("x-request-id") != ["attacker-chosen-id"]
        assert len(r.headers.get_list("x-request-id")) == 1
        ids.add(r.headers["x-request-id"])
    assert len(ids) == 4


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        (b"proxy-id-12345678", True),
        (b"short", False),
        (b"has space 12345678", False),
        (b'{"injected": 1}xxxx', False),
        (b"x" * 65, False),
    ],
)
async def test_behind_a_trusted_proxy_only_a_safe_incoming_request_id_is_kept(
    incoming: bytes, kept: bool
) -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    middleware = RequestIdMiddleware(app, trust_incoming=True)
    await middleware(scope(headers=[(b"x-request-id", incoming)]), receive, send)
    assert (seen[0][REQUEST_ID_KEY] == incoming.decode()) is kept


def test_first_per_window_lets_one_through_and_reports_the_rest_with_the_next() -> None:
    seen = FirstPerWindow()
    assert seen.first("a", 1) == 0
    assert [seen.first("a", 1) for _ in range(5)] == [None] * 5
    assert seen.first("b", 1) == 0  # another key is its own
    assert seen.first("a", 2) == 5  # the next window reports what the last one held back
    assert seen.first("a", 2) is None
    assert seen.first("a", 3) == 1


def test_first_per_window_forgets_the_least_recent_keys_past_its_size() -> None:
    seen = FirstPerWindow(max_keys=3)
    for key in "abcd":
        assert seen.first(key, 1) == 0
    assert seen.first("a", 1) == 0  # forgotten: logged again
    assert seen.first("d", 1) is None  # remembered

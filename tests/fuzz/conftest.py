"""The app under fuzzing, on the backends of the run (a scratch PostgreSQL database and
this run's Redis db, or SQLite in a temporary directory and the in-process store), in
development mode so that it serves its OpenAPI document, with an admin account whose
credentials the fuzzer signs in with.

Schemathesis runs the app in-process on an event loop of its own (a thread), lifespan
included, and its pytest plugin ends every lifespan after each test: each test gets a
fresh app on the module's database. Whatever here talks to the running app goes through
Schemathesis' own client, so through that loop.
"""

from __future__ import annotations

import asyncio
import json
import uuid
import zlib
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, cast

import argon2
import jsonschema_rs
import pytest
import schemathesis
from pydantic import BaseModel, ValidationError
from schemathesis.python import asgi

from bastion.api.schemas import ChangePassword, CreateOrder, LoginRequest, RegisterRequest
from bastion.app import BastionApp, create_app
from bastion.config import Settings, load_settings
from bastion.db import open_database, users
from bastion.db.migrations import migrate
from tests.conftest import FAST_HASH, PASSWORD, PG_URL, REDIS_URL, UNLIMITED
from tests.databases import scratch_postgres

# A 400 is how this API rejects invalid input (never FastAPI's 422); a 404 answers a
# path id that is not a UUID (nothing lives there); 413 is the body limit, which acts
# before any parsing. Each is a rejection, which is what the check wants to see.
REJECTIONS = [400, 401, 403, 404, 405, 413, 415]
CONFIG: dict[str, Any] = {
    "checks": {
        "negative_data_rejection": {"expected-statuses": REJECTIONS},
        # Schema-valid is not valid: the app also checks what JSON Schema cannot say (an
        # email address, a strong password, a product that exists, an active promo code,
        # lengths after trimming, no control characters), and answers 400 for those.
        "positive_data_acceptance": {"enabled": False},
    },
}


@dataclass(frozen=True)
class Account:
    email: str
    password: str


@dataclass(frozen=True)
class KnownIds:
    """Ids that exist in the app, for the fuzzer to use beside the ones it makes up."""

    products: Sequence[str]
    orders: Sequence[str]
    sessions: Sequence[str]
    users: Sequence[str]


async def _flush_redis(url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


async def _create_admin(settings: Settings, account: Account) -> None:
    """Straight into the database, before the app starts: the API makes no admins."""
    hasher = argon2.PasswordHasher(
        memory_cost=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
        type=argon2.Type.ID,
    )
    db = open_database(settings.effective_database_url)
    try:
        await migrate(db)
        await users.create_user(
            db,
            user_id=str(uuid.uuid4()),
            email=account.email,
            name="Fuzz Admin",
            password_hash=hasher.hash(account.password),
            role="admin",
            now=datetime.now(UTC),
        )
    finally:
        await db.close()


@pytest.fixture(scope="module")
def fuzz_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with ExitStack() as stack:
        database_url = stack.enter_context(scratch_postgres(PG_URL)) if PG_URL else None
        if REDIS_URL:
            asyncio.run(_flush_redis(REDIS_URL))
        var: Path = tmp_path_factory.mktemp("fuzz") / "var"
        yield load_settings(
            var_dir=var,
            database_url=database_url,
            redis_url=REDIS_URL,
            rate_limit_global=UNLIMITED,
            rate_limit_auth=UNLIMITED,
            lockout=UNLIMITED,
            **FAST_HASH,
        )


@pytest.fixture(scope="module")
def fuzz_admin(fuzz_settings: Settings) -> Account:
    account = Account(f"fuzz-admin-{uuid.uuid4().hex[:8]}@example.com", PASSWORD)
    asyncio.run(_create_admin(fuzz_settings, account))
    return account


@pytest.fixture
def fuzz_app(fuzz_settings: Settings, fuzz_admin: Account) -> Iterator[BastionApp]:
    app = create_app(fuzz_settings)
    yield app
    asgi.shutdown_lifespans()


def _login(app: BastionApp, account: Account) -> str:
    with asgi.get_client(cast(Any, app)) as client:
        r = client.post(
            "/api/auth/login", json={"email": account.email, "password": account.password}
        )
    assert r.status_code == 200, r.text
    return str(r.json()["accessToken"])


def _known_ids(app: BastionApp, account: Account) -> KnownIds:
    headers = {"Authorization": f"Bearer {_login(app, account)}"}
    with asgi.get_client(cast(Any, app)) as client:
        products = [p["id"] for p in client.get("/api/products?limit=100").json()["items"]]
        orders = client.get("/api/orders?limit=100", headers=headers).json()["items"]
        for _ in range(3 - len(orders)):
            body: dict[str, Any] = {
                "items": [{"productId": products[0], "quantity": 1}],
                "shippingAddress": {
                    "line1": "1 Fuzz Street",
                    "city": "Testville",
                    "postcode": "AB1 2CD",
                    "country": "GB",
                },
            }
            r = client.post("/api/orders", json=body, headers=headers)
            assert r.status_code == 201, r.text
            orders.append(r.json())
        sessions = client.get("/api/auth/sessions", headers=headers).json()["items"]
        people = client.get("/api/admin/users?limit=100", headers=headers).json()["items"]
    return KnownIds(
        products=products,
        orders=[o["id"] for o in orders],
        sessions=[s["id"] for s in sessions],
        users=[u["id"] for u in people],
    )


def _canonical(value: Any) -> bytes:
    """``value`` as JSON with sorted keys: the standard library's, which takes whatever
    the fuzzer makes (orjson refuses integers past 64 bits, such as 2**64)."""
    return json.dumps(value, sort_keys=True, default=repr).encode()


def _pick(value: Any, choices: Sequence[str]) -> str | None:
    """Deterministically, for about half of the values: one of ``choices`` (the fuzz
    stays reproducible; the other half keeps what the fuzzer made up)."""
    digest = zlib.crc32(_canonical(value))
    if not choices or digest % 2:
        return None
    return choices[(digest >> 1) % len(choices)]


class Bodies:
    """Makes about half of the valid bodies acceptable in meaning too, not only in shape.

    A body is changed only when it matches its schema in the document as generated, and
    only into one that the request model accepts (which implies the schema): a case meant
    to break the schema still breaks it."""

    MODELS: ClassVar[dict[str, type[BaseModel]]] = {
        "POST /api/orders": CreateOrder,
        "POST /api/auth/register": RegisterRequest,
        "POST /api/auth/login": LoginRequest,
        "POST /api/users/me/password": ChangePassword,
    }

    def __init__(self, document: dict[str, Any], ids: KnownIds, account: Account) -> None:
        self.ids = ids
        self.account = account
        self.schemas = {
            label: jsonschema_rs.validator_for(
                {
                    "$ref": f"#/components/schemas/{model.__name__}",
                    "components": document["components"],
                }
            )
            for label, model in self.MODELS.items()
        }

    def __call__(self, label: str, body: Any) -> Any:
        model = self.MODELS.get(label)
        if model is None or not isinstance(body, dict) or _pick(body, ["yes"]) is None:
            return body
        if not self.schemas[label].is_valid(body):
            return body
        candidate = self._candidate(label, body)
        try:
            model.model_validate(candidate)
        except ValidationError:
            return body
        return candidate

    def _candidate(self, label: str, body: dict[str, Any]) -> dict[str, Any]:
        account = self.account
        if label == "POST /api/orders":
            items = [
                {**item, "productId": _pick(item, self.ids.products) or self.ids.products[0]}
                for item in body["items"]
            ]
            return {**body, "items": items, "promoCode": _pick(body, ["WELCOME10"])}
        if label == "POST /api/auth/register":
            tag = zlib.crc32(_canonical(body))
            return {**body, "email": f"fuzz-{tag:08x}@example.com", "password": PASSWORD}
        if label == "POST /api/auth/login":
            return {"email": account.email, "password": account.password}
        # The new password is the old one: the account must stay usable for the fuzzer.
        return {"currentPassword": account.password, "newPassword": account.password}


_PATH_IDS = {
    "product_id": "products",
    "order_id": "orders",
    "session_id": "sessions",
    "user_id": "users",
}


@pytest.fixture
def api_schema(fuzz_app: BastionApp, fuzz_admin: Account) -> Any:
    """The app's OpenAPI document, loaded from the running app, with the admin's Bearer
    token on every case (fetched again when a response says it was revoked) and hooks
    that put real ids and acceptable values into about half of the valid cases."""
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", fuzz_app, config=schemathesis.Config.from_dict(CONFIG)
    )
    ids = _known_ids(fuzz_app, fuzz_admin)
    bodies = Bodies(schema.raw_schema, ids, fuzz_admin)

    @schema.auth()
    class BearerAuth:
        def get(self, case: Any, ctx: Any) -> str:
            return _login(ctx.app, fuzz_admin)

        def set(self, case: Any, data: str, ctx: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    @schema.hook
    def map_body(context: Any, body: Any) -> Any:
        return bodies(context.operation.label, body)

    @schema.hook
    def map_path_parameters(context: Any, parameters: dict[str, Any] | None) -> Any:
        if not parameters:
            return parameters
        out = dict(parameters)
        for name, kind in _PATH_IDS.items():
            value = out.get(name)
            if isinstance(value, str) and _is_uuid(value):
                out[name] = _pick(value, getattr(ids, kind)) or value
        return out

    return schema


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36

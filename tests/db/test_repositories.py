"""The repositories answer the same way on SQLite and PostgreSQL: the same rows, the same
types, the same refusals, and the same atomicity under concurrency."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bastion.db import (
    Database,
    DatabaseUnavailable,
    IntegrityConflict,
    catalogue,
    events,
    orders,
    users,
)
from bastion.security.session_store import Session, SqlSessionStore

NOW = datetime(2030, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


async def _user(db: Database, email: str | None = None) -> dict[str, Any]:
    return await users.create_user(
        db,
        user_id=str(uuid.uuid4()),
        email=email or f"{uuid.uuid4().hex[:8]}@example.com",
        name="Repo User",
        password_hash="$argon2id$dummy",
        role="user",
        now=NOW,
    )


async def _order(db: Database, user_id: str, *, at: datetime = NOW) -> str:
    product = (await catalogue.list_products(db, after=None, limit=1))[0]
    order_id = str(uuid.uuid4())
    await orders.create_order(
        db,
        orders.NewOrder(
            id=order_id,
            user_id=user_id,
            items=[(product["id"], 2, product["price_cents"]), (product["id"], 1, 1)],
            line1="1 Main Street",
            city="Springfield",
            postcode="12345",
            country="US",
            promo_code=None,
            subtotal_cents=2 * product["price_cents"] + 1,
            discount_cents=0,
            total_cents=2 * product["price_cents"] + 1,
            currency="USD",
            created_at=at,
        ),
    )
    return order_id


async def test_rows_have_the_same_python_types_on_every_backend(db: Database) -> None:
    row = await _user(db)
    again = await users.get_user(db, user_id=row["id"])
    assert again == row
    assert isinstance(row["id"], str)
    uuid.UUID(row["id"])
    assert row["flagged"] is False
    assert row["created_at"] == NOW  # microseconds and the time zone survive
    assert row["created_at"].utcoffset() == timedelta(0)


async def test_a_second_account_with_the_same_email_is_an_integrity_conflict(
    db: Database,
) -> None:
    await _user(db, "same@example.com")
    with pytest.raises(IntegrityConflict):
        await _user(db, "same@example.com")
    assert (await users.get_user_by_email(db, email="same@example.com")) is not None


async def test_a_user_is_found_by_exact_email_only(db: Database) -> None:
    row = await _user(db, "exact@example.com")
    assert (await users.get_user_by_email(db, email="exact@example.com"))["id"] == row["id"]  # type: ignore[index]
    for other in ("EXACT@example.com", "exact@example.co", "%@example.com", "exact@example.com "):
        assert await users.get_user_by_email(db, email=other) is None


async def test_updates_touch_one_user_only(db: Database) -> None:
    a, b = await _user(db), await _user(db)
    renamed = await users.update_name(db, user_id=a["id"], name="Renamed")
    assert renamed is not None
    assert renamed["name"] == "Renamed"
    assert await users.set_flagged(db, user_id=a["id"], flagged=True)
    untouched = await users.get_user(db, user_id=b["id"])
    assert untouched == b
    assert await users.update_name(db, user_id=str(uuid.uuid4()), name="x") is None
    assert not await users.set_flagged(db, user_id=str(uuid.uuid4()), flagged=True)


async def test_users_list_in_id_order_after_a_keyset(db: Database) -> None:
    created = sorted([(await _user(db))["id"] for _ in range(5)])
    first = await users.list_users(db, after=None, limit=100)
    assert [r["id"] for r in first] == sorted(r["id"] for r in first)
    rest = await users.list_users(db, after=created[1], limit=100)
    assert [r["id"] for r in rest if r["id"] in created] == created[2:]


async def test_an_order_is_read_back_with_its_items_in_order_by_its_owner_only(
    db: Database,
) -> None:
    owner, other = await _user(db), await _user(db)
    order_id = await _order(db, owner["id"])
    row = await orders.get_order(db, order_id=order_id, user_id=owner["id"])
    assert row is not None
    assert [(i["quantity"], i["unit_price_cents"] > 0) for i in row["items"]] == [
        (2, True), (1, True),
    ]  # fmt: skip
    assert row["status"] == "pending"
    assert row["created_at"] == NOW
    assert await orders.get_order(db, order_id=order_id, user_id=other["id"]) is None
    assert await orders.order_owner(db, order_id=order_id) == owner["id"]
    assert await orders.order_owner(db, order_id=str(uuid.uuid4())) is None


async def test_an_order_naming_a_missing_product_is_not_written_at_all(db: Database) -> None:
    owner = await _user(db)
    bad = orders.NewOrder(
        id=str(uuid.uuid4()),
        user_id=owner["id"],
        items=[(str(uuid.uuid4()), 1, 100)],
        line1="1 Main Street",
        city="Springfield",
        postcode="12345",
        country="US",
        promo_code=None,
        subtotal_cents=100,
        discount_cents=0,
        total_cents=100,
        currency="USD",
        created_at=NOW,
    )
    with pytest.raises(IntegrityConflict):
        await orders.create_order(db, bad)
    assert await orders.order_owner(db, order_id=bad.id) is None


async def test_racing_cancels_of_one_order_succeed_exactly_once(db: Database) -> None:
    owner = await _user(db)
    order_id = await _order(db, owner["id"])
    outcomes = await asyncio.gather(
        *(orders.cancel_order(db, order_id=order_id, user_id=owner["id"]) for _ in range(8))
    )
    assert sorted(o for o, _ in outcomes) == ["cancelled"] + ["conflict"] * 7
    assert all(row is not None and row["status"] == "cancelled" for _, row in outcomes)


async def test_cancel_does_not_touch_another_users_order(db: Database) -> None:
    owner, other = await _user(db), await _user(db)
    order_id = await _order(db, owner["id"])
    assert await orders.cancel_order(db, order_id=order_id, user_id=other["id"]) == (
        "missing", None,
    )  # fmt: skip
    row = await orders.get_order(db, order_id=order_id, user_id=owner["id"])
    assert row is not None
    assert row["status"] == "pending"


async def test_order_listing_pages_by_time_then_id(db: Database) -> None:
    owner = await _user(db)
    ids = [await _order(db, owner["id"], at=NOW) for _ in range(3)]
    later = await _order(db, owner["id"], at=NOW + timedelta(microseconds=1))
    page = await orders.list_orders(db, user_id=owner["id"], after=None, limit=10)
    assert [r["id"] for r in page] == [later, *sorted(ids, reverse=True)]
    assert all(len(r["items"]) == 2 for r in page)
    after = (page[1]["created_at"], page[1]["id"])
    rest = await orders.list_orders(db, user_id=owner["id"], after=after, limit=10)
    assert [r["id"] for r in rest] == [r["id"] for r in page[2:]]


async def test_price_lookup_ignores_missing_products_and_refuses_dead_promo_codes(
    db: Database,
) -> None:
    product = (await catalogue.list_products(db, after=None, limit=1))[0]
    missing = str(uuid.uuid4())
    now = datetime.now(UTC)
    found, percent = await orders.price_lookup(
        db, product_ids=[product["id"], missing], promo_code="WELCOME10", now=now
    )
    assert list(found) == [product["id"]]
    assert found[product["id"]]["price_cents"] == product["price_cents"]
    assert percent == 10
    for code in ("EXPIRED-2020", "NOSUCHCODE", "welcome10", None):
        _, percent = await orders.price_lookup(
            db, product_ids=[product["id"]], promo_code=code, now=now
        )
        assert percent is None, code


async def test_seeding_the_catalogue_twice_adds_nothing_the_second_time(db: Database) -> None:
    from bastion.seed import DEMO_PRODUCTS, seed_demo

    before = await catalogue.list_products(db, after=None, limit=100)
    assert await seed_demo(db) == (0, 0)
    after = await catalogue.list_products(db, after=None, limit=100)
    assert after == before
    assert len(after) == len(DEMO_PRODUCTS)


async def test_racing_rotations_of_one_refresh_token_succeed_exactly_once(db: Database) -> None:
    owner = await _user(db)
    sid = str(uuid.uuid4())
    now = datetime.now(UTC)
    sessions = SqlSessionStore(db)
    await sessions.create(
        session_id=sid,
        user_id=owner["id"],
        token_id="t0",
        now=now,
        expires_at=now + timedelta(days=7),
        ends_at=now + timedelta(days=30),
        user_agent="test",
        ip="127.0.0.1",
    )
    results = await asyncio.gather(
        *(
            sessions.rotate(
                session_id=sid,
                old_token_id="t0",
                new_token_id=f"t{n}",
                now=now,
                expires_at=now + timedelta(days=7),
                ip="127.0.0.1",
            )
            for n in range(1, 9)
        )
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    row = await sessions.get(sid)
    assert row is not None
    assert row.token_id == winners[0].token_id


async def test_a_rotation_never_moves_the_token_past_the_sessions_end_nor_works_after_it(
    db: Database,
) -> None:
    owner = await _user(db)
    sid = str(uuid.uuid4())
    ends_at = NOW + timedelta(days=10)
    sessions = SqlSessionStore(db)
    await sessions.create(
        session_id=sid,
        user_id=owner["id"],
        token_id="t0",
        now=NOW,
        expires_at=NOW + timedelta(days=7),
        ends_at=ends_at,
        user_agent="test",
        ip="127.0.0.1",
    )

    async def rotate(old: str, new: str, at: datetime) -> Session | None:
        return await sessions.rotate(
            session_id=sid,
            old_token_id=old,
            new_token_id=new,
            now=at,
            expires_at=at + timedelta(days=7),
            ip="127.0.0.1",
        )

    first = await rotate("t0", "t1", NOW + timedelta(days=1))
    assert first is not None
    assert (first.expires_at, first.ends_at) == (NOW + timedelta(days=8), ends_at)
    second = await rotate("t1", "t2", NOW + timedelta(days=6))
    assert second is not None
    assert (second.expires_at, second.ends_at) == (ends_at, ends_at)  # cut to the end
    assert await rotate("t2", "t3", ends_at) is None  # the end itself is past
    row = await sessions.get(sid)
    assert row is not None
    assert row.token_id == "t2"
    listed = await sessions.live(owner["id"], now=ends_at)
    assert listed == []


async def test_security_events_survive_text_that_postgresql_cannot_store(db: Database) -> None:
    """NUL and lone surrogates from a client must not make the event writer fail."""
    record = {
        "id": str(uuid.uuid4()),
        "ts": datetime.now(UTC),
        "event": "input.rejected",
        "ip": "203.0.113.7",
        "user_id": None,
        "method": "POST",
        "path": "/api/orders/a\x00b",
        "request_id": "req\x00",
        "reason": "invalid fields: #/a\x00b, #/\ud800",
    }
    await events.insert_events(db, [record])
    (row,) = await events.list_events(db, after=None, limit=1)
    assert row["id"] == record["id"]
    assert "\x00" not in row["path"] + row["reason"] + row["request_id"]
    assert row["path"].startswith("/api/orders/a")
    assert row["reason"].startswith("invalid fields: #/a")


async def test_a_statement_the_database_gives_up_on_is_unavailable_not_a_crash(
    db: Database,
) -> None:
    """Timeouts become :class:`DatabaseUnavailable` (the API's 503), on both backends."""
    if db.dialect == "postgresql":

        async def slow() -> None:
            async with db.transaction() as conn:
                await conn.execute("SET LOCAL statement_timeout = '50ms'")
                await conn.fetch("SELECT pg_sleep(2)")

        with pytest.raises(DatabaseUnavailable):
            await slow()
    else:
        path = db.path  # type: ignore[attr-defined]
        await db.execute("PRAGMA busy_timeout = 50")
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            with pytest.raises(DatabaseUnavailable):
                await _user(db)
        finally:
            holder.close()
    assert (await db.fetchrow("SELECT 1 AS ok")) == {"ok": 1}

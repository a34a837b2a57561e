"""Orders and their items.

An order and its items are written atomically. On PostgreSQL that is one statement (a
data-modifying CTE, so one round trip); SQLite has no such CTE and gets a transaction
of two statements on its single in-process connection instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from bastion.db.database import Connection, Database, Row

__all__ = [
    "NewOrder",
    "cancel_order",
    "create_order",
    "get_order",
    "list_orders",
    "order_owner",
    "price_lookup",
]

ORDER_COLUMNS = (
    "o.id, o.user_id, o.status, o.ship_line1, o.ship_city, o.ship_postcode, o.ship_country,"
    " o.promo_code, o.subtotal_cents, o.discount_cents, o.total_cents, o.currency, o.created_at"
)
ITEM_COLUMNS = "i.product_id, i.quantity, i.unit_price_cents"

# Products named by a JSON array of ids, plus the promo code's discount, in one query.
_PRICES = {
    "postgresql": (
        "SELECT p.id, p.price_cents, p.currency, NULL::int AS percent_off FROM products p"
        " WHERE p.active AND p.id IN (SELECT (jsonb_array_elements_text($1::jsonb))::uuid)"
        " UNION ALL SELECT NULL, NULL, NULL, c.percent_off FROM promo_codes c"
        " WHERE c.code = $2 AND c.active AND (c.expires_at IS NULL OR c.expires_at > $3)"
    ),
    "sqlite": (
        "SELECT p.id, p.price_cents, p.currency, NULL AS percent_off FROM products p"
        " WHERE p.active AND p.id IN (SELECT value FROM json_each($1))"
        " UNION ALL SELECT NULL, NULL, NULL, c.percent_off FROM promo_codes c"
        " WHERE c.code = $2 AND c.active AND (c.expires_at IS NULL OR c.expires_at > $3)"
    ),
}

_INSERT_ORDER = (
    "INSERT INTO orders (id, user_id, status, ship_line1, ship_city, ship_postcode,"
    " ship_country, promo_code, subtotal_cents, discount_cents, total_cents, currency,"
    " created_at) VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
)
_INSERT_ITEM = (
    "INSERT INTO order_items (order_id, position, product_id, quantity, unit_price_cents)"
    " VALUES ($1, $2, $3, $4, $5)"
)
_INSERT_ORDER_WITH_ITEMS_PG = (
    "WITH o AS (INSERT INTO orders (id, user_id, status, ship_line1, ship_city, ship_postcode,"
    " ship_country, promo_code, subtotal_cents, discount_cents, total_cents, currency,"
    " created_at) VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12))"
    " INSERT INTO order_items (order_id, position, product_id, quantity, unit_price_cents)"
    " SELECT $1, t.position, t.product_id, t.quantity, t.unit_price_cents"
    " FROM jsonb_to_recordset($13::jsonb)"
    " AS t(position int, product_id uuid, quantity int, unit_price_cents int)"
)


@dataclass(frozen=True, slots=True)
class NewOrder:
    id: str
    user_id: str
    items: Sequence[tuple[str, int, int]]  # product_id, quantity, unit_price_cents
    line1: str
    city: str
    postcode: str
    country: str
    promo_code: str | None
    subtotal_cents: int
    discount_cents: int
    total_cents: int
    currency: str
    created_at: datetime


async def price_lookup(
    db: Database, *, product_ids: Sequence[str], promo_code: str | None, now: datetime
) -> tuple[dict[str, Row], int | None]:
    """Current prices of the named active products, and the promo code's percentage
    (``None`` when the code is unknown, inactive or expired)."""
    rows = await db.fetch(
        _PRICES[db.dialect], orjson.dumps(list(product_ids)).decode(), promo_code, now
    )
    products = {r["id"]: r for r in rows if r["id"] is not None}
    percents = [r["percent_off"] for r in rows if r["id"] is None]
    return products, (percents[0] if percents else None)


async def create_order(db: Database, order: NewOrder) -> None:
    head: tuple[Any, ...] = (
        order.id,
        order.user_id,
        order.line1,
        order.city,
        order.postcode,
        order.country,
        order.promo_code,
        order.subtotal_cents,
        order.discount_cents,
        order.total_cents,
        order.currency,
        order.created_at,
    )
    if db.dialect == "postgresql":
        items = [
            {"position": n, "product_id": p, "quantity": q, "unit_price_cents": c}
            for n, (p, q, c) in enumerate(order.items)
        ]
        await db.execute(_INSERT_ORDER_WITH_ITEMS_PG, *head, orjson.dumps(items).decode())
        return
    async with db.transaction() as conn:
        await conn.execute(_INSERT_ORDER, *head)
        await conn.executemany(
            _INSERT_ITEM, [(order.id, n, p, q, c) for n, (p, q, c) in enumerate(order.items)]
        )


def _group(rows: list[Row]) -> list[Row]:
    """Fold order x item join rows into orders with an ``items`` list, keeping order."""
    orders: dict[str, Row] = {}
    for r in rows:
        order = orders.get(r["id"])
        if order is None:
            order = orders[r["id"]] = {k: v for k, v in r.items() if k not in _ITEM_KEYS}
            order["items"] = []
        order["items"].append(
            {
                "product_id": r["product_id"],
                "quantity": r["quantity"],
                "unit_price_cents": r["unit_price_cents"],
            }
        )
    return list(orders.values())


_ITEM_KEYS = frozenset({"product_id", "quantity", "unit_price_cents"})


async def get_order(db: Connection, *, order_id: str, user_id: str) -> Row | None:
    """The order if it exists *and* belongs to ``user_id``."""
    rows = await db.fetch(
        "SELECT o.id, o.user_id, o.status, o.ship_line1, o.ship_city, o.ship_postcode, o.ship_country, o.promo_code, o.subtotal_cents, o.discount_cents, o.total_cents, o.currency, o.created_at, i.product_id, i.quantity, i.unit_price_cents FROM orders o"
        " JOIN order_items i ON i.order_id = o.id"
        " WHERE o.id = $1 AND o.user_id = $2 ORDER BY i.position",
        order_id,
        user_id,
    )
    return _group(rows)[0] if rows else None


async def order_owner(db: Connection, *, order_id: str) -> str | None:
    row = await db.fetchrow("SELECT user_id FROM orders WHERE id = $1", order_id)
    return None if row is None else str(row["user_id"])


async def list_orders(
    db: Connection, *, user_id: str, after: tuple[datetime, str] | None, limit: int
) -> list[Row]:
    """The user's orders, newest first, ``limit`` of them after the keyset ``after``."""
    if after is None:
        rows = await db.fetch(
            "SELECT o.id, o.user_id, o.status, o.ship_line1, o.ship_city, o.ship_postcode,"
            " o.ship_country, o.promo_code, o.subtotal_cents, o.discount_cents, o.total_cents,"
            " o.currency, o.created_at, i.product_id, i.quantity, i.unit_price_cents"
            " FROM (SELECT * FROM orders WHERE user_id = $1"
            " ORDER BY created_at DESC, id DESC LIMIT $2) o"
            " JOIN order_items i ON i.order_id = o.id"
            " ORDER BY o.created_at DESC, o.id DESC, i.position",
            user_id,
            limit,
        )
    else:
        rows = await db.fetch(
            "SELECT o.id, o.user_id, o.status, o.ship_line1, o.ship_city, o.ship_postcode,"
            " o.ship_country, o.promo_code, o.subtotal_cents, o.discount_cents, o.total_cents,"
            " o.currency, o.created_at, i.product_id, i.quantity, i.unit_price_cents"
            " FROM (SELECT * FROM orders WHERE user_id = $1"
            " AND (created_at < $3 OR (created_at = $3 AND id < $4))"
            " ORDER BY created_at DESC, id DESC LIMIT $2) o"
            " JOIN order_items i ON i.order_id = o.id"
            " ORDER BY o.created_at DESC, o.id DESC, i.position",
            user_id,
            limit,
            after[0],
            after[1],
        )
    return _group(rows)


async def cancel_order(db: Database, *, order_id: str, user_id: str) -> tuple[str, Row | None]:
    """``("cancelled", order)``, ``("conflict", order)`` when not pending, or
    ``("missing", None)`` when absent or someone else's. One conditional update: two
    racing cancels cannot both succeed."""
    updated = await db.fetchrow(
        "UPDATE orders SET status = 'cancelled'"
        " WHERE id = $1 AND user_id = $2 AND status = 'pending' RETURNING id",
        order_id,
        user_id,
    )
    order = await get_order(db, order_id=order_id, user_id=user_id)
    if order is None:
        return "missing", None
    return ("cancelled" if updated else "conflict"), order

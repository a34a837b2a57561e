"""Products and promo codes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson

from bastion.db.database import Connection, Database, Row

__all__ = [
    "active_promo",
    "get_product",
    "list_products",
    "products_by_ids",
    "upsert_product",
    "upsert_promo",
]

PRODUCT_COLUMNS = "id, name, price_cents, currency"

# Products named by a JSON array of ids, in one query whatever their number.
_BY_IDS = {
    "postgresql": (
        "SELECT id, name, price_cents, currency FROM products"
        " WHERE id IN (SELECT (jsonb_array_elements_text($1::jsonb))::uuid)"
    ),
    "sqlite": (
        "SELECT id, name, price_cents, currency FROM products"
        " WHERE id IN (SELECT value FROM json_each($1))"
    ),
}


async def list_products(db: Connection, *, after: str | None, limit: int) -> list[Row]:
    if after is None:
        return await db.fetch(
            "SELECT id, name, price_cents, currency FROM products WHERE active ORDER BY id LIMIT $1",
            limit,
        )
    return await db.fetch(
        "SELECT id, name, price_cents, currency FROM products WHERE active AND id > $1 ORDER BY id LIMIT $2",
        after,
        limit,
    )


async def get_product(db: Connection, *, product_id: str) -> Row | None:
    return await db.fetchrow(
        "SELECT id, name, price_cents, currency FROM products WHERE id = $1 AND active", product_id
    )


async def products_by_ids(db: Database, *, product_ids: Sequence[str]) -> dict[str, Row]:
    """The named products by id, active or not (an order keeps naming what was bought);
    ids that name no product are left out."""
    if not product_ids:
        return {}
    rows = await db.fetch(_BY_IDS[db.dialect], orjson.dumps(list(product_ids)).decode())
    return {r["id"]: r for r in rows}


async def active_promo(db: Connection, *, code: str, now: datetime) -> Row | None:
    return await db.fetchrow(
        "SELECT code, percent_off FROM promo_codes"
        " WHERE code = $1 AND active AND (expires_at IS NULL OR expires_at > $2)",
        code,
        now,
    )


async def upsert_product(
    db: Connection, *, product_id: str, name: str, price_cents: int, currency: str, now: datetime
) -> bool:
    """Insert the product unless one of that name exists; True when inserted."""
    row = await db.fetchrow(
        "INSERT INTO products (id, name, price_cents, currency, active, created_at)"
        " VALUES ($1, $2, $3, $4, TRUE, $5) ON CONFLICT (name) DO NOTHING RETURNING id",
        product_id,
        name,
        price_cents,
        currency,
        now,
    )
    return row is not None


async def upsert_promo(
    db: Connection,
    *,
    code: str,
    percent_off: int,
    active: bool,
    expires_at: datetime | None,
    now: datetime,
) -> bool:
    row = await db.fetchrow(
        "INSERT INTO promo_codes (code, percent_off, active, expires_at, created_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (code) DO NOTHING RETURNING code",
        code,
        percent_off,
        active,
        expires_at,
        now,
    )
    return row is not None

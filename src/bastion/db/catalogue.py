"""Products and promo codes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson

from bastion.db.database import Connection, Database, Row

__all__ = [
    "MAX_NAME",
    "active_promo",
    "get_product",
    "list_products",
    "order_key",
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


# The catalogue's order: by name, ignoring ASCII case, then by id (names may tie, ids
# cannot). Both databases fold only ASCII letters and compare the rest code point by
# code point (SQLite's BINARY, PostgreSQL's "C"), so both give one order, which
# :func:`order_key` reproduces; the ``products_by_name`` index serves it. Written out
# whole for each dialect (the key differs only by its collation). After a cursor, the
# first term seeks in the index; the second drops the tie's earlier ids.
_LIST = {
    "postgresql": (
        "SELECT id, name, price_cents, currency FROM products WHERE active"
        ' ORDER BY lower(name COLLATE "C"), id LIMIT $1',
        "SELECT id, name, price_cents, currency FROM products WHERE active"
        ' AND lower(name COLLATE "C") >= lower($1 COLLATE "C")'
        ' AND (lower(name COLLATE "C") > lower($1 COLLATE "C") OR id > $2)'
        ' ORDER BY lower(name COLLATE "C"), id LIMIT $3',
    ),
    "sqlite": (
        "SELECT id, name, price_cents, currency FROM products WHERE active"
        " ORDER BY lower(name), id LIMIT $1",
        "SELECT id, name, price_cents, currency FROM products WHERE active"
        " AND lower(name) >= lower($1) AND (lower(name) > lower($1) OR id > $2)"
        " ORDER BY lower(name), id LIMIT $3",
    ),
}
MAX_NAME = 200  # characters: a page's cursor carries the name, and cursors are bounded
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def order_key(row: Row) -> tuple[str, str]:
    """Where a product sorts in the catalogue: ``(name with ASCII letters lowered, id)``."""
    return str(row["name"]).translate(_ASCII_LOWER), str(row["id"])


async def list_products(db: Database, *, after: tuple[str, str] | None, limit: int) -> list[Row]:
    """Active products in catalogue order (:func:`order_key`), the first ``limit`` after
    the product named ``after`` (``(name, id)``, as the previous page's last row has)."""
    first, following = _LIST[db.dialect]
    if after is None:
        return await db.fetch(first, limit)
    name, product_id = after
    return await db.fetch(following, name, product_id, limit)


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
    """Insert the product unless one of that name exists; True when inserted. Raises
    :class:`ValueError` for a name that is empty or longer than :data:`MAX_NAME`."""
    if not 0 < len(name) <= MAX_NAME:
        raise ValueError(f"a product name has 1 to {MAX_NAME} characters")
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

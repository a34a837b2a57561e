"""The demo catalogue: idempotent, so ``seed-demo`` can run any number of times."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from bastion.db import Database
from bastion.db.catalogue import upsert_product, upsert_promo

__all__ = ["DEMO_PRODUCTS", "seed_demo"]

DEMO_PRODUCTS = (
    ("Mechanical keyboard", 8900),
    ("Wireless mouse", 2900),
    ("USB-C hub", 4500),
    ("27-inch monitor", 24900),
    ("Laptop stand", 3900),
    ("Noise-cancelling headphones", 19900),
    ("Webcam 1080p", 5900),
)


async def seed_demo(db: Database) -> tuple[int, int]:
    """Insert what is missing; returns (products added, promo codes added)."""
    now = datetime.now(UTC)
    products = 0
    for name, price in DEMO_PRODUCTS:
        products += await upsert_product(
            db, product_id=str(uuid.uuid4()), name=name, price_cents=price, currency="USD", now=now
        )
    promos = 0
    promos += await upsert_promo(
        db, code="WELCOME10", percent_off=10, active=True, expires_at=None, now=now
    )
    promos += await upsert_promo(
        db,
        code="EXPIRED-2020",
        percent_off=20,
        active=True,
        expires_at=datetime(2020, 12, 31, 23, 59, 59, tzinfo=UTC),
        now=now,
    )
    return products, promos

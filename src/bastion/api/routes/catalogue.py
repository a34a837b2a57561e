"""``/api/products``: the public catalogue.

Catalogue pages are the same for every caller and change rarely, so each rendered page
is kept for a second (:class:`bastion.api.page_cache.PageCache`). Prices are never taken
from there: an order re-reads them in its own query.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from starlette.responses import Response

from bastion.api.deps import Svc
from bastion.api.errors import ApiError, json_response
from bastion.api.pagination import (
    DEFAULT_LIMIT,
    Limit,
    ProductCursor,
    decode_product_cursor,
    product_cursor,
)
from bastion.api.schemas import Page, ProductOut, product_out
from bastion.db import catalogue

router = APIRouter(prefix="/api/products", tags=["catalogue"])


@router.get("", response_model=Page[ProductOut])
async def list_products(
    services: Svc, limit: Limit = DEFAULT_LIMIT, cursor: ProductCursor = None
) -> Response:
    """Active products by name (ASCII case aside), then id; ``nextCursor`` continues
    after the page's last product, whatever is added before or after it meanwhile."""
    cached = services.catalogue_pages.get((cursor, limit))
    if cached is not None:
        return Response(cached, media_type="application/json")
    after = decode_product_cursor(cursor) if cursor else None
    rows = await catalogue.list_products(services.db, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    response = json_response(
        {
            "items": [product_out(r) for r in rows],
            "nextCursor": product_cursor(rows[-1]) if more else None,
        }
    )
    services.catalogue_pages.put((cursor, limit), bytes(response.body))
    return response


@router.get("/{product_id}", response_model=ProductOut)
async def get_product(product_id: uuid.UUID, services: Svc) -> Response:
    row = await catalogue.get_product(services.db, product_id=str(product_id))
    if row is None:
        raise ApiError(404, "No such product.")
    return json_response(product_out(row))

"""``/api/orders``: a user's own orders, and nobody else's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from starlette.responses import Response

from bastion.api.deps import CurrentUser, Svc
from bastion.api.errors import ApiError, json_response
from bastion.api.openapi import problem_responses
from bastion.api.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, encode_cursor
from bastion.api.schemas import CreateOrder, OrderOut, Page, order_out
from bastion.db import orders

router = APIRouter(prefix="/api/orders", tags=["orders"])

NOT_FOUND = "No such order."


@router.post("", status_code=201, response_model=OrderOut)
async def create_order(
    body: CreateOrder, request: Request, user: CurrentUser, services: Svc
) -> Response:
    now = datetime.now(UTC)
    wanted = list(dict.fromkeys(item.productId for item in body.items))
    products, percent = await orders.price_lookup(
        services.db, product_ids=wanted, promo_code=body.promoCode, now=now
    )
    unknown = [
        {"pointer": f"#/items/{n}/productId", "detail": "names no product"}
        for n, item in enumerate(body.items)
        if item.productId not in products
    ]
    if unknown:
        services.events.emit(
            "input.rejected", request.scope, user_id=user.user_id, reason="unknown product"
        )
        raise ApiError(400, "The order names products that do not exist.", errors=unknown)
    if body.promoCode is not None and percent is None:
        services.events.emit(
            "input.rejected", request.scope, user_id=user.user_id, reason="inactive promo code"
        )
        raise ApiError(
            400,
            "The promo code is not valid.",
            errors=[{"pointer": "#/promoCode", "detail": "is unknown, inactive or expired"}],
        )
    currencies = {products[p]["currency"] for p in wanted}
    if len(currencies) != 1:
        raise ApiError(
            400,
            "All products of an order must share one currency.",
            errors=[{"pointer": "#/items", "detail": "mixes currencies"}],
        )
    lines = [
        (item.productId, item.quantity, int(products[item.productId]["price_cents"]))
        for item in body.items
    ]
    subtotal = sum(q * c for _, q, c in lines)
    discount = subtotal * (percent or 0) // 100
    address = body.shippingAddress
    new = orders.NewOrder(
        id=str(uuid.uuid4()),
        user_id=user.user_id,
        items=lines,
        line1=address.line1,
        city=address.city,
        postcode=address.postcode.upper(),
        country=address.country,
        promo_code=body.promoCode,
        subtotal_cents=subtotal,
        discount_cents=discount,
        total_cents=subtotal - discount,
        currency=currencies.pop(),
        created_at=now,
    )
    await orders.create_order(services.db, new)
    row = {
        "id": new.id,
        "status": "pending",
        "items": [{"product_id": p, "quantity": q, "unit_price_cents": c} for p, q, c in lines],
        "ship_line1": new.line1,
        "ship_city": new.city,
        "ship_postcode": new.postcode,
        "ship_country": new.country,
        "promo_code": new.promo_code,
        "subtotal_cents": new.subtotal_cents,
        "discount_cents": new.discount_cents,
        "total_cents": new.total_cents,
        "currency": new.currency,
        "created_at": now,
    }
    return json_response(order_out(row), status=201, headers={"Location": f"/api/orders/{new.id}"})


@router.get("", response_model=Page[OrderOut])
async def list_orders(
    user: CurrentUser, services: Svc, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Response:
    after = decode_cursor(cursor, datetime, str) if cursor else None
    rows = await orders.list_orders(
        services.db,
        user_id=user.user_id,
        after=after,
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
    return json_response({"items": [order_out(r) for r in rows], "nextCursor": next_cursor})


async def _not_yours(request: Request, services: Svc, user_id: str, order_id: str) -> ApiError:
    """404 either way; a request for someone else's order is also a security event."""
    owner = await orders.order_owner(services.db, order_id=order_id)
    if owner is not None and owner != user_id:
        services.events.emit(
            "authz.denied", request.scope, user_id=user_id, reason="order belongs to another user"
        )
    return ApiError(404, NOT_FOUND)


@router.get("/{order_id}", response_model=OrderOut)
async def get_order(
    order_id: uuid.UUID, request: Request, user: CurrentUser, services: Svc
) -> Response:
    row = await orders.get_order(services.db, order_id=str(order_id), user_id=user.user_id)
    if row is None:
        raise await _not_yours(request, services, user.user_id, str(order_id))
    return json_response(order_out(row))


@router.post("/{order_id}/cancel", response_model=OrderOut, responses=problem_responses(409))
async def cancel_order(
    order_id: uuid.UUID, request: Request, user: CurrentUser, services: Svc
) -> Response:
    outcome, row = await orders.cancel_order(
        services.db, order_id=str(order_id), user_id=user.user_id
    )
    if row is None:
        raise await _not_yours(request, services, user.user_id, str(order_id))
    if outcome == "conflict":
        raise ApiError(409, f"Only pending orders can be cancelled; this one is {row['status']}.")
    return json_response(order_out(row))

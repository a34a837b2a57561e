"""The GraphQL schema: read-only, over the same repositories and allowlists as REST.

Every type lists its fields explicitly and is built from a database row by picking those
fields, never by copying the row: there is no field for a password hash, an order's
owner, or anyone's email but the caller's. Nothing links back from a product to orders
or users, and ``orders`` takes the caller's id from the verified token, never from an
argument or from the parent object, so no field path reaches another user's data.

Each request gets its own :class:`Context` with dataloaders: the products of every order
item at one level are fetched in one query, and aliases that repeat ``me`` or ask for
the same page of ``orders`` or ``products`` share one query.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import strawberry
from graphql import DocumentNode
from strawberry.dataloader import DataLoader
from strawberry.extensions import DisableIntrospection, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from bastion.api.deps import Principal, Services
from bastion.api.errors import ApiError
from bastion.api.graphql.limits import GraphQLLimits
from bastion.api.pagination import (
    PRODUCT_CURSOR,
    decode_cursor,
    decode_product_cursor,
    encode_cursor,
    product_cursor,
)
from bastion.db import catalogue, orders, users
from bastion.db.database import Row
from bastion.security import InvalidToken

__all__ = ["Context", "build_schema"]

OrdersKey = tuple[str, int, str | None]  # user id, first, after
PageKey = tuple[int, str | None]  # first, after


@dataclass(slots=True)
class Context:
    """What resolvers may use: the services, the verified caller (``None`` when the
    request carries no token), the limits, and this request's dataloaders."""

    services: Services
    principal: Principal | None
    limits: GraphQLLimits
    document: DocumentNode
    users: DataLoader[str, Row | None]
    orders: DataLoader[OrdersKey, list[Row]]
    products: DataLoader[str, Row | None]
    catalogue: DataLoader[PageKey, list[Row]]

    @classmethod
    def create(
        cls,
        services: Services,
        principal: Principal | None,
        limits: GraphQLLimits,
        document: DocumentNode,
    ) -> Context:
        db = services.db

        async def load_users(ids: list[str]) -> Sequence[Row | None]:
            return [await users.get_user(db, user_id=i) for i in ids]

        async def load_orders(keys: list[OrdersKey]) -> Sequence[list[Row]]:
            # One query per distinct (first, after): aliases asking the same share it.
            return [
                await orders.list_orders(
                    db,
                    user_id=user_id,
                    after=decode_cursor(after, datetime, str) if after else None,
                    limit=first,
                )
                for user_id, first, after in keys
            ]

        async def load_products(ids: list[str]) -> Sequence[Row | None]:
            found = await catalogue.products_by_ids(db, product_ids=ids)
            return [found.get(i) for i in ids]

        async def load_pages(keys: list[PageKey]) -> Sequence[list[Row]]:
            return [
                await catalogue.list_products(
                    db, after=decode_product_cursor(after) if after else None, limit=first
                )
                for first, after in keys
            ]

        return cls(
            services=services,
            principal=principal,
            limits=limits,
            document=document,
            users=DataLoader(load_fn=load_users),
            orders=DataLoader(load_fn=load_orders),
            products=DataLoader(load_fn=load_products),
            catalogue=DataLoader(load_fn=load_pages),
        )

    def caller(self) -> Principal:
        """The verified caller, or :class:`InvalidToken` (401, as on REST)."""
        if self.principal is None:
            raise InvalidToken("missing bearer token")
        return self.principal


Info = strawberry.Info[Context, None]


def _check_first(first: int, limits: GraphQLLimits) -> None:
    # The router checks this before execution; kept here so no resolver trusts it.
    if not 1 <= first <= limits.max_first:
        raise ApiError(
            400,
            f"first must be between 1 and {limits.max_first}.",
            errors=[{"pointer": "#/query", "detail": "first is out of range"}],
        )


def _check_cursor(after: str | None, *kinds: type | str) -> None:
    if not after:  # as on REST, an empty cursor is no cursor: the first page
        return
    try:
        decode_cursor(after, *kinds)
    except ApiError:
        raise ApiError(
            400,
            "The cursor is not valid.",
            errors=[{"pointer": "#/query", "detail": "after is not a cursor this API issued"}],
        ) from None


@strawberry.type(description="A product of the catalogue.")
class Product:
    id: strawberry.ID
    name: str
    price_cents: int
    currency: str
    cursor: str = strawberry.field(description="Pass as `after` for the products after this.")

    @classmethod
    def from_row(cls, row: Row) -> Product:
        return cls(
            id=strawberry.ID(row["id"]),
            name=row["name"],
            price_cents=row["price_cents"],
            currency=row["currency"],
            cursor=product_cursor(row),
        )


@strawberry.type(description="One line of an order, at the price it was ordered at.")
class OrderItem:
    product_id: strawberry.ID
    quantity: int
    unit_price_cents: int

    @strawberry.field
    async def product(self, info: Info) -> Product | None:
        """The product ordered; batched, one query for all the items at this level."""
        row = await info.context.products.load(str(self.product_id))
        return None if row is None else Product.from_row(row)


@strawberry.type
class ShippingAddress:
    line1: str
    city: str
    postcode: str
    country: str


@strawberry.type(description="One of the caller's orders.")
class Order:
    id: strawberry.ID
    status: str
    items: list[OrderItem]
    shipping_address: ShippingAddress
    promo_code: str | None
    subtotal_cents: int
    discount_cents: int
    total_cents: int
    currency: str
    created_at: datetime
    cursor: str = strawberry.field(description="Pass as `after` for the orders after this.")

    @classmethod
    def from_row(cls, row: Row) -> Order:
        return cls(
            id=strawberry.ID(row["id"]),
            status=row["status"],
            items=[
                OrderItem(
                    product_id=strawberry.ID(i["product_id"]),
                    quantity=i["quantity"],
                    unit_price_cents=i["unit_price_cents"],
                )
                for i in row["items"]
            ],
            shipping_address=ShippingAddress(
                line1=row["ship_line1"],
                city=row["ship_city"],
                postcode=row["ship_postcode"],
                country=row["ship_country"],
            ),
            promo_code=row["promo_code"],
            subtotal_cents=row["subtotal_cents"],
            discount_cents=row["discount_cents"],
            total_cents=row["total_cents"],
            currency=row["currency"],
            created_at=row["created_at"],
            cursor=encode_cursor(row["created_at"], row["id"]),
        )


@strawberry.type(description="The caller's own account.")
class User:
    id: strawberry.ID
    email: str
    name: str
    role: str
    created_at: datetime

    @strawberry.field
    async def orders(self, info: Info, first: int = 20, after: str | None = None) -> list[Order]:
        """The caller's orders, newest first, ``first`` of them after the cursor."""
        context = info.context
        # Whose orders is decided by the token alone, never by this object or an argument.
        caller = context.caller()
        _check_first(first, context.limits)
        _check_cursor(after, datetime, str)
        rows = await context.orders.load((caller.user_id, first, after))
        return [Order.from_row(r) for r in rows]

    @classmethod
    def from_row(cls, row: Row) -> User:
        return cls(
            id=strawberry.ID(row["id"]),
            email=row["email"],
            name=row["name"],
            role=row["role"],
            created_at=row["created_at"],
        )


@strawberry.type
class Query:
    @strawberry.field
    async def me(self, info: Info) -> User:
        """The caller's own account: needs a Bearer token."""
        caller = info.context.caller()
        row = await info.context.users.load(caller.user_id)
        if row is None:
            raise ApiError(
                401, "The token refers to no user.", headers={"WWW-Authenticate": "Bearer"}
            )
        return User.from_row(row)

    @strawberry.field
    async def products(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> list[Product]:
        """The catalogue by name (ASCII case aside), then id, as on REST: ``first``
        products after the cursor; public."""
        context = info.context
        _check_first(first, context.limits)
        _check_cursor(after, *PRODUCT_CURSOR)
        rows = await context.catalogue.load((first, after))
        return [Product.from_row(r) for r in rows]


class _ParsedDocument(SchemaExtension):
    """Hands strawberry the document the router has already parsed and checked against
    the limits, so that what runs is exactly what was checked (and is parsed once)."""

    def on_parse(self) -> Iterator[None]:
        context: Any = self.execution_context.context
        self.execution_context.graphql_document = context.document
        yield


class _Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[Any], execution_context: ExecutionContext | None = None
    ) -> None:
        """Nothing here: the router turns errors into answers and logs the unexpected
        ones itself (strawberry would log every invalid query as a server error)."""


@cache
def build_schema(*, production: bool) -> strawberry.Schema:
    """The schema; in production without introspection or "did you mean" hints."""
    extensions: list[type[SchemaExtension]] = [_ParsedDocument]
    if production:
        extensions.append(DisableIntrospection)
    return _Schema(
        query=Query,
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=production),
    )

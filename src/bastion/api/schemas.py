"""Request models (strict: no coercion, unknown fields refused, trimmed before length)
and response models, whose fields are the allowlist of what a client may see."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "PATTERN_MESSAGES",
    "CreateOrder",
    "LoginRequest",
    "OrderOut",
    "ProductOut",
    "RegisterRequest",
    "UserOut",
    "normalise_email",
    "order_out",
    "product_out",
    "user_out",
]

T = TypeVar("T")
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
POSTCODE_PATTERN = r"^[A-Za-z0-9 -]{3,10}$"
PROMO_CODE_PATTERN = r"^[A-Z0-9-]{4,20}$"
# What a client is told when a string does not match one of the patterns above.
PATTERN_MESSAGES = {
    UUID_PATTERN: "must be a UUID",
    POSTCODE_PATTERN: "must be 3 to 10 letters, digits, spaces or hyphens",
    PROMO_CODE_PATTERN: "must be 4 to 20 capital letters, digits or hyphens",
}


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def normalise_email(value: str) -> str:
    """Trim, NFKC, lower-case: the one form emails are stored and compared in."""
    return unicodedata.normalize("NFKC", value).strip().lower()


def _email(value: str) -> str:
    value = normalise_email(value)
    local, _, domain = value.rpartition("@")
    if (
        not local
        or "." not in domain
        or domain.startswith(".")
        or domain.endswith(".")
        or any(c.isspace() or c in '<>()[]\\,;:"' for c in value.replace("@", "", 1))
        or "@" in local
        or not value.isprintable()
    ):
        raise ValueError("must be an email address")
    return value


Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(_email)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
# Passwords are never trimmed: every character the user typed counts.
Password = Annotated[str, StringConstraints(max_length=1024)]
ProductId = Annotated[str, StringConstraints(pattern=UUID_PATTERN), AfterValidator(str.lower)]


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must not contain control characters")
    return value


class RegisterRequest(Strict):
    email: Email
    password: Password
    name: Annotated[Name, AfterValidator(_printable)]


def _login_email(value: str) -> str:
    # Not checked as an address (a login says nothing about which emails exist), but
    # control characters are refused: PostgreSQL cannot even compare a text with NUL.
    if not value.strip().isprintable():
        raise ValueError("must not contain control characters")
    return value


class LoginRequest(Strict):
    email: Annotated[str, StringConstraints(max_length=254), AfterValidator(_login_email)]
    password: Password


class UpdateMe(Strict):
    name: Annotated[Name, AfterValidator(_printable)]


class ChangePassword(Strict):
    currentPassword: Password
    newPassword: Password


class OrderItemIn(Strict):
    productId: ProductId
    quantity: Annotated[int, Field(ge=1, le=100)]


class AddressIn(Strict):
    line1: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=5, max_length=200),
        AfterValidator(_printable),
    ]
    city: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=2, max_length=100),
        AfterValidator(_printable),
    ]
    postcode: Annotated[str, StringConstraints(pattern=POSTCODE_PATTERN)]
    country: Literal["IN", "US", "GB", "AU"]


class CreateOrder(Strict):
    items: Annotated[list[OrderItemIn], Field(min_length=1, max_length=50)]
    shippingAddress: AddressIn
    promoCode: Annotated[str, StringConstraints(pattern=PROMO_CODE_PATTERN)] | None = None


# ----------------------------------------------------------------------------- responses


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    role: Literal["user", "admin"]
    createdAt: datetime


class AdminUserOut(UserOut):
    flagged: bool
    lockedUntil: datetime | None


class ProductOut(BaseModel):
    id: str
    name: str
    priceCents: int
    currency: str


class OrderItemOut(BaseModel):
    productId: str
    quantity: int
    unitPriceCents: int


class AddressOut(BaseModel):
    line1: str
    city: str
    postcode: str
    country: str


class OrderOut(BaseModel):
    id: str
    status: Literal["pending", "paid", "shipped", "cancelled"]
    items: list[OrderItemOut]
    shippingAddress: AddressOut
    promoCode: str | None
    subtotalCents: int
    discountCents: int
    totalCents: int
    currency: str
    createdAt: datetime


class Page(BaseModel, Generic[T]):
    items: list[T]
    nextCursor: str | None


class TokenResponse(BaseModel):
    accessToken: str
    tokenType: Literal["Bearer"] = "Bearer"
    expiresIn: int


class SessionOut(BaseModel):
    id: str
    createdAt: datetime
    lastUsedAt: datetime
    # The session's absolute end: however often it is refreshed, it ends then (sooner
    # if it is not refreshed within the refresh token's lifetime).
    expiresAt: datetime
    userAgent: str
    ip: str
    current: bool
    # How the login behind the session was authenticated, in RFC 8176's names: ["pwd"],
    # ["pwd", "otp"], ["pwd", "recovery"] or ["passkey"]. A refresh keeps it.
    authMethods: list[str]


def _ts(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def user_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "email": row["email"],
        "name": row["name"],
        "role": row["role"],
        "createdAt": _ts(row["created_at"]),
    }


def product_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "priceCents": row["price_cents"],
        "currency": row["currency"],
    }


def order_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "status": row["status"],
        "items": [
            {
                "productId": i["product_id"],
                "quantity": i["quantity"],
                "unitPriceCents": i["unit_price_cents"],
            }
            for i in row["items"]
        ],
        "shippingAddress": {
            "line1": row["ship_line1"],
            "city": row["ship_city"],
            "postcode": row["ship_postcode"],
            "country": row["ship_country"],
        },
        "promoCode": row["promo_code"],
        "subtotalCents": row["subtotal_cents"],
        "discountCents": row["discount_cents"],
        "totalCents": row["total_cents"],
        "currency": row["currency"],
        "createdAt": _ts(row["created_at"]),
    }

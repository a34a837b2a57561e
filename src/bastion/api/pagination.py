"""Opaque cursors and the ``limit``/``cursor`` query parameters of every list."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import Query

from bastion.api.errors import ApiError
from bastion.db.catalogue import MAX_NAME

__all__ = [
    "DEFAULT_LIMIT",
    "Cursor",
    "Limit",
    "Name",
    "ProductCursor",
    "decode_cursor",
    "decode_product_cursor",
    "encode_cursor",
    "product_cursor",
]

DEFAULT_LIMIT = 20  # a page when the client names no limit
Limit = Annotated[int, Query(ge=1, le=100, strict=False)]
Cursor = Annotated[str | None, Query(max_length=512)]
# A catalogue cursor carries a product's name: MAX_NAME characters of at most 6 bytes
# of JSON each (a control character's escape), the id, then base64: 1,660 at most.
ProductCursor = Annotated[str | None, Query(max_length=1700)]


class Name:
    """The cursor kind of a product name: text of 1 to 200 characters, no NUL."""


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def encode_cursor(*values: Any) -> str:
    payload = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def _bad() -> ApiError:
    return ApiError(
        400,
        "The cursor is not valid.",
        errors=[{"pointer": "#/query/cursor", "detail": "is not a cursor this API issued"}],
    )


def decode_cursor(cursor: str, *kinds: type | str) -> tuple[Any, ...]:
    """Decode a cursor of the given shape (``datetime``, :class:`Name`, ``str`` UUIDs,
    and strings that must be there as they are: a tag), or 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError):
        raise _bad() from None
    if not isinstance(values, list) or len(values) != len(kinds):
        raise _bad()
    out: list[Any] = []
    for kind, value in zip(kinds, values, strict=True):
        if not isinstance(value, str):
            raise _bad()
        if isinstance(kind, str):
            if value != kind:
                raise _bad()
            out.append(value)
        elif kind is datetime:
            try:
                parsed = datetime.fromisoformat(value)
                if parsed.tzinfo is None:
                    raise ValueError("a cursor's time has an offset")
                # Normalised here: an offset that pushes the instant past year 9999 (or
                # before year 1) would otherwise overflow in the database driver.
                out.append(parsed.astimezone(UTC))
            except (ValueError, OverflowError):
                raise _bad() from None
        elif kind is Name:
            # orjson refuses lone surrogates already; NUL is what PostgreSQL refuses.
            if not 0 < len(value) <= MAX_NAME or "\x00" in value:
                raise _bad()
            out.append(value)
        elif _UUID.match(value):
            out.append(value)
        else:
            raise _bad()
    return tuple(out)


# A product cursor starts with this tag: without it, an orders cursor (a time, an id)
# would pass for a name and an id.
PRODUCT_TAG = "p"


def product_cursor(row: Any) -> str:
    """The cursor after a catalogue row: its place in the order, ``(name, id)``."""
    return encode_cursor(PRODUCT_TAG, row["name"], row["id"])


def decode_product_cursor(cursor: str) -> tuple[str, str]:
    """``(name, id)`` of a catalogue cursor, or 400."""
    _, name, product_id = decode_cursor(cursor, *PRODUCT_CURSOR)
    return name, product_id


PRODUCT_CURSOR: tuple[type | str, ...] = (PRODUCT_TAG, Name, str)

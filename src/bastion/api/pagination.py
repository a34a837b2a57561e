"""Opaque cursors and the ``limit``/``cursor`` query parameters of every list."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import Query

from bastion.api.errors import ApiError

__all__ = ["DEFAULT_LIMIT", "Cursor", "Limit", "decode_cursor", "encode_cursor"]

DEFAULT_LIMIT = 20  # a page when the client names no limit
Limit = Annotated[int, Query(ge=1, le=100, strict=False)]
Cursor = Annotated[str | None, Query(max_length=512)]
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


def decode_cursor(cursor: str, *kinds: type) -> tuple[Any, ...]:
    """Decode a cursor of the given shape (``datetime`` and/or ``str`` UUIDs), or 400."""
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
        if kind is datetime:
            try:
                parsed = datetime.fromisoformat(value)
                if parsed.tzinfo is None:
                    raise ValueError("a cursor's time has an offset")
                # Normalised here: an offset that pushes the instant past year 9999 (or
                # before year 1) would otherwise overflow in the database driver.
                out.append(parsed.astimezone(UTC))
            except (ValueError, OverflowError):
                raise _bad() from None
        elif _UUID.match(value):
            out.append(value)
        else:
            raise _bad()
    return tuple(out)

"""Request bodies for the order tests: one valid CreateOrder, and edits that spoil it.

Tables of cases name products by :class:`Product` placeholders (the seeded ids are only
known once the app runs); :func:`edited` applies an edit and fills the ids in.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

MISSING_PRODUCT = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Product:
    """The n-th seeded product's id, filled in when the body is built."""

    n: int


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE: Any = _Delete()
Path = tuple[str | int, ...]


def address(**overrides: Any) -> dict[str, Any]:
    return {
        "line1": "221B Baker Street",
        "city": "London",
        "postcode": "NW1 6XE",
        "country": "GB",
        **overrides,
    }


def order_body(product_ids: list[str], *quantities: int, **overrides: Any) -> dict[str, Any]:
    """A valid CreateOrder for the given products (quantity 1 each unless given)."""
    qty = list(quantities) or [1] * len(product_ids)
    body: dict[str, Any] = {
        "items": [{"productId": p, "quantity": q} for p, q in zip(product_ids, qty, strict=True)],
        "shippingAddress": address(),
    }
    body.update(overrides)
    return body


def _fill(value: Any, product_ids: list[str]) -> Any:
    if isinstance(value, Product):
        return product_ids[value.n]
    if isinstance(value, dict):
        return {k: _fill(v, product_ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, product_ids) for v in value]
    return value


def edited(product_ids: list[str], path: Path, value: Any) -> Any:
    """The valid body with ``value`` put at ``path`` (``DELETE`` removes the key; the
    empty path replaces the whole body)."""
    body: Any = order_body(product_ids[:1])
    if value is not DELETE:
        value = _fill(copy.deepcopy(value), product_ids)
    if not path:
        return value
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body

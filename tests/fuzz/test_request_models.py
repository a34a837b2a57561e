"""Properties of the request models, on generated bodies that sit on and around every
edge (padding, case, Unicode, lengths, types, unknown fields): whatever a model accepts
serialises to a body it accepts again, unchanged; and no order body the API refuses
ever reaches the database."""

from __future__ import annotations

import json
import string
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from bastion.api.errors import validation_errors
from bastion.api.schemas import (
    AddressIn,
    ChangePassword,
    CreateOrder,
    LoginRequest,
    OrderItemIn,
    RegisterRequest,
    UpdateMe,
)
from bastion.app import BastionApp
from tests.conftest import Client

M = TypeVar("M", bound=BaseModel)
PROPERTIES = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# ------------------------------------------------------------------------------ values

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
PADDING = st.sampled_from(["", " ", "  ", "\t", "\u3000", "\n"])
# Characters that change under NFKC or lower-casing, combine, or are not printable: the
# normalisations are where a round trip would break.
AWKWARD = st.sampled_from(
    [
        "ﬁ",
        "İ",
        "ß",
        "ẞ",
        "Σ",
        "ς",
        "ǅ",
        "K",
        "Ω",
        "Ⅸ",
        "①",
        "\uff45",
        "\u0301",
        "\u200b",
        "\x00",
        "é",
    ]
)
PLAIN = string.ascii_letters + string.digits + "-'."


def padded(core: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda a, c, b: a + c + b, PADDING, core, PADDING)


def uuid_text() -> st.SearchStrategy[str]:
    return st.builds(
        lambda u, upper: str(u).upper() if upper else str(u), st.uuids(), st.booleans()
    )


def _drop(obj: dict[str, Any], drops: list[bool]) -> dict[str, Any]:
    keep = drops + [False] * len(obj)
    return {k: v for (k, v), drop in zip(obj.items(), keep, strict=False) if not drop}


class Bodies:
    """Strategies for request bodies.

    Smooth bodies are meant to be valid and sit on the edges: lengths at the limits,
    padding to trim, upper-case ids, Unicode that normalises. Rough bodies also break
    them: any JSON in place of a field, a field missing, an unknown or server-decided
    field more, lengths past the limits.
    """

    def __init__(self, *, rough: bool) -> None:
        self.rough = rough

    def field(self, valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(valid, valid, valid, ANY_JSON) if self.rough else valid

    def obj(self, fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
        full = st.fixed_dictionaries({k: self.field(v) for k, v in fields.items()})
        if not self.rough:
            return full
        missing = st.builds(_drop, full, st.lists(st.booleans(), max_size=len(fields)))
        extra = st.builds(
            lambda o, k, v: {**o, k: v},
            full,
            st.sampled_from(["role", "id", "status", "totalCents", "unitPriceCents", "x"]),
            JSON_SCALARS,
        )
        return st.one_of(full, full, full, missing, extra)

    def text(self, low: int, high: int) -> st.SearchStrategy[str]:
        if self.rough:
            low, high = max(0, low - 2), high + 2
        core = st.text(alphabet=PLAIN, min_size=1, max_size=1).flatmap(
            lambda edge: st.text(
                alphabet=PLAIN + " ", min_size=max(0, low - 2), max_size=high - 2
            ).map(lambda middle: edge + middle + edge)
        )
        unicode = st.lists(st.one_of(st.characters(), AWKWARD), min_size=low, max_size=high).map(
            "".join
        )
        limits = st.sampled_from(["x" * low, "x" * high])
        return st.one_of(padded(core), padded(limits), unicode)

    def item(self, ids: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
        low, high = (-1, 102) if self.rough else (1, 100)
        return self.obj({"productId": ids, "quantity": st.integers(min_value=low, max_value=high)})

    def address(self) -> st.SearchStrategy[Any]:
        postcode = st.from_regex(r"\A[A-Za-z0-9 -]{3,10}\Z")
        countries = ["IN", "US", "GB", "AU"] + (["gb", "FR", ""] if self.rough else [])
        return self.obj(
            {
                "line1": self.text(5, 200),
                "city": self.text(2, 100),
                "postcode": postcode | st.text(max_size=12) if self.rough else postcode,
                "country": st.sampled_from(countries),
            }
        )

    def order(self, ids: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
        low, high = (0, 52) if self.rough else (1, 50)
        codes = ["WELCOME10", "EXPIRED-2020"] + (["welcome10", "NOP"] if self.rough else [])
        body = self.obj(
            {
                "items": st.lists(self.item(ids), min_size=low, max_size=high),
                "shippingAddress": self.address(),
                "promoCode": st.one_of(
                    st.none(),
                    st.none(),
                    st.sampled_from(codes),
                    st.from_regex(r"\A[A-Z0-9-]{4,20}\Z"),
                ),
            }
        )
        return st.one_of(body, body, body, ANY_JSON) if self.rough else body

    def email(self) -> st.SearchStrategy[str]:
        local = st.one_of(
            st.text(alphabet=PLAIN, min_size=1, max_size=20),
            st.lists(st.one_of(st.characters(), AWKWARD), min_size=1, max_size=8).map("".join),
        )
        built = st.builds(
            lambda a, b, upper: (f"{a}@{b}.example").upper() if upper else f"{a}@{b}.example",
            local,
            st.text(alphabet=string.ascii_letters, min_size=1, max_size=12),
            st.booleans(),
        )
        emails = st.emails().filter(lambda e: len(e) <= 254)
        return st.one_of(padded(built), emails, st.text(max_size=30) if self.rough else emails)

    def password(self) -> st.SearchStrategy[str]:
        return st.one_of(self.text(12, 128), st.just("Correct-Horse-Battery-42"))

    def register(self) -> st.SearchStrategy[Any]:
        return self.obj(
            {"email": self.email(), "password": self.password(), "name": self.text(1, 100)}
        )

    def login(self) -> st.SearchStrategy[Any]:
        return self.obj({"email": self.email(), "password": self.password()})

    def update_me(self) -> st.SearchStrategy[Any]:
        return self.obj({"name": self.text(1, 100)})

    def change_password(self) -> st.SearchStrategy[Any]:
        return self.obj({"currentPassword": self.password(), "newPassword": self.password()})


SMOOTH = Bodies(rough=False)
ROUGH = Bodies(rough=True)
MODEL_BODIES: dict[type[BaseModel], st.SearchStrategy[Any]] = {
    CreateOrder: SMOOTH.order(uuid_text()),
    OrderItemIn: SMOOTH.item(uuid_text()),
    AddressIn: SMOOTH.address(),
    RegisterRequest: SMOOTH.register(),
    LoginRequest: SMOOTH.login(),
    UpdateMe: SMOOTH.update_me(),
    ChangePassword: SMOOTH.change_password(),
}


def _json(value: Any) -> bytes:
    """JSON text as a client could send it (integers of any size, escaped surrogates)."""
    return json.dumps(value).encode()


def accepted(model: type[M], body: Any) -> M | None:
    try:
        return model.model_validate_json(_json(body))
    except ValidationError:
        return None


# ------------------------------------------------------------------------------ properties


def _round_trip(model: type[BaseModel], body: Any) -> None:
    first = accepted(model, body)
    event(f"{model.__name__} {'accepted' if first else 'refused'}")
    assume(first is not None)
    assert first is not None
    wire = first.model_dump(mode="json")
    second = model.model_validate_json(_json(wire))
    assert second == first
    assert second.model_dump(mode="json") == wire


@given(body=MODEL_BODIES[CreateOrder])
@PROPERTIES
def test_whatever_create_order_accepts_serialises_to_a_body_it_accepts_unchanged(body: Any) -> None:
    _round_trip(CreateOrder, body)


@given(data=st.data())
@PROPERTIES
def test_whatever_any_request_model_accepts_serialises_to_a_body_it_accepts_unchanged(
    data: st.DataObject,
) -> None:
    model = data.draw(st.sampled_from(sorted(MODEL_BODIES, key=lambda m: m.__name__)))
    _round_trip(model, data.draw(MODEL_BODIES[model], label=model.__name__))


@given(body=st.one_of(ANY_JSON, ROUGH.order(uuid_text())))
@PROPERTIES
def test_a_create_order_body_is_accepted_or_refused_with_pointers_never_anything_else(
    body: Any,
) -> None:
    """Validation accepts, or raises ``ValidationError`` (no other exception, whatever the
    JSON) whose every error the API can render as a pointer into the body."""
    try:
        CreateOrder.model_validate_json(_json(body))
    except ValidationError as exc:
        rendered = validation_errors(exc.errors())
        assert rendered
        for error in rendered:
            assert error["pointer"].startswith("#/"), error
            assert error["detail"], error


@pytest.fixture
async def buyer(client: Client) -> dict[str, Any]:
    return await client.user()


async def _counts(app: BastionApp) -> tuple[int, int]:
    row = await app.services.db.fetchrow(
        "SELECT (SELECT count(*) FROM orders) AS orders,"
        " (SELECT count(*) FROM order_items) AS items"
    )
    assert row is not None
    return int(row["orders"]), int(row["items"])


@given(data=st.data())
@settings(
    PROPERTIES,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
async def test_an_order_body_the_api_refuses_never_reaches_the_database(
    app: BastionApp, client: Client, buyer: dict[str, Any], data: st.DataObject
) -> None:
    real = await client.product_ids()
    known = st.sampled_from(real) | st.sampled_from(real).map(str.upper)
    body = data.draw(st.one_of(SMOOTH.order(known), ROUGH.order(known | uuid_text())), label="body")
    before = await _counts(app)
    r = await client.post(
        "/api/orders",
        content=_json(body),
        headers={**buyer["headers"], "Content-Type": "application/json"},
    )
    after = await _counts(app)
    assert r.status_code in (201, 400), r.text
    model = accepted(CreateOrder, body)
    event(f"{r.status_code}, model {'accepts' if model else 'refuses'}")
    if r.status_code == 201:
        assert model is not None, "the API took a body its model refuses"
        assert after == (before[0] + 1, before[1] + len(body["items"]))
        assert r.json()["items"] == [
            {**i.model_dump(), "unitPriceCents": line["unitPriceCents"]}
            for i, line in zip(model.items, r.json()["items"], strict=True)
        ]
    else:
        assert after == before, f"a refused body changed the database: {body!r}"
        assert r.headers["content-type"] == "application/problem+json"
        if model is not None:
            # Refused in meaning only: a product that does not exist, or a promo code
            # that is not active.
            assert {e["pointer"] for e in r.json()["errors"]} <= {
                *(f"#/items/{n}/productId" for n in range(len(model.items))),
                "#/promoCode",
            }, r.text

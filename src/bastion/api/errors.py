"""Problem details for every error the API can raise, and nothing else.

Each handler answers RFC 9457 ``application/problem+json``. Validation errors carry
``errors``: JSON pointers into the body (``#/items/0/quantity``) or the query
(``#/query/limit``). Anything unexpected is a 500 with an opaque body: the details go
to the log, never to the client.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from bastion.api.schemas import PATTERN_MESSAGES
from bastion.db import DatabaseUnavailable
from bastion.security import (
    BastionError,
    RateLimited,
    SecurityError,
    StoreUnavailable,
    Unavailable,
    problem_body,
)

__all__ = [
    "PROBLEM_BASE",
    "ApiError",
    "install_error_handlers",
    "pointer",
    "problem",
    "store_down",
]

logger = logging.getLogger("bastion.api")

# The base of the service's problem types (the layer's own default is about:blank).
PROBLEM_BASE = "https://bastion.dev/problems/"


class ApiError(BastionError):
    """An answer other than success: status, detail, optional pointers and headers."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: Sequence[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.headers = dict(headers or {})


def store_down() -> ApiError:
    """The 503 of a password attempt or a refresh while the store cannot answer: the
    limits and revocations it holds are never skipped."""
    return ApiError(
        503, "Sign-in is unavailable for a moment; try again shortly.", headers={"Retry-After": "5"}
    )


def problem(
    status: int,
    detail: str,
    *,
    errors: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    extra: dict[str, Any] = {"errors": list(errors)} if errors else {}
    return Response(
        problem_body(status, detail, base=PROBLEM_BASE, **extra),
        status_code=status,
        media_type="application/problem+json",
        headers=dict(headers or {}),
    )


def pointer(loc: Sequence[int | str]) -> str:
    """``("body", "items", 0, "quantity")`` -> ``#/items/0/quantity`` (RFC 6901 escaping)."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    escaped = [str(p).replace("~", "~0").replace("/", "~1") for p in parts]
    return "#/" + "/".join(escaped)


_MESSAGES = {
    "extra_forbidden": "is not a field you can set",
    "missing": "is required",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "string_type": "must be a string",
    "string_unicode": "must be valid Unicode text",
    "list_type": "must be an array",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "bool_type": "must be a boolean",
    "bool_parsing": "must be a boolean",
    "uuid_parsing": "must be a UUID",
    "uuid_type": "must be a UUID",
}
# Messages that quote a limit from the error's context.
_LIMITS = {
    "string_too_short": "must be at least {min_length} characters",  # or "not be empty"
    "string_too_long": "must be at most {max_length} characters",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} items",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "greater_than": "must be more than {gt}",
    "less_than": "must be less than {lt}",
}


def _detail(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind in _LIMITS:
        try:
            return (
                _LIMITS[kind]
                .format(**ctx)
                .replace("be at least 1 characters", "not be empty")
                .replace("at least 1 item(s)", "at least 1 item")
            )
        except (KeyError, IndexError):
            pass
    elif kind == "string_pattern_mismatch":
        return PATTERN_MESSAGES.get(str(ctx.get("pattern")), "has the wrong format")
    elif kind == "literal_error" and "expected" in ctx:
        choices = str(ctx["expected"]).replace(" or ", ", ").replace("'", "")
        return f"must be one of {choices}"
    message = str(error.get("msg", "is invalid"))
    return message.removeprefix("Value error, ")


def validation_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    out = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        # FastAPI reports a field of a JSON body that is not an object under ("body",).
        out.append({"pointer": pointer(loc) if loc else "#/", "detail": _detail(error)})
    return out


async def _validation_handler(request: Request, exc: Exception) -> Response:
    exc = cast(RequestValidationError, exc)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        _reject(request, "malformed JSON")
        return problem(400, "The request body is not valid JSON.")
    if any(e.get("loc", ("",))[0] == "path" for e in errors):
        return problem(404, "No such resource.")
    details = validation_errors(errors)
    _reject(request, "invalid fields: " + ", ".join(dict.fromkeys(_named(e) for e in errors[:10])))
    return problem(400, "The request is invalid.", errors=details)


_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")


def _named(error: Mapping[str, Any]) -> str:
    """The pointer of a rejected field for the security event, naming only what the
    schema declares: a key the client made up (an unknown field, which can be anything,
    a secret or a flood of text included) is ``*``."""
    loc = list(error.get("loc", ()))
    if error.get("type") == "extra_forbidden" and loc:
        loc[-1] = "*"
    parts = [p if isinstance(p, int) or _FIELD_NAME.fullmatch(str(p)) else "*" for p in loc]
    return pointer(parts) if parts else "#/"


def _reject(request: Request, reason: str) -> None:
    events = getattr(request.app.state, "events", None)
    if events is not None:
        events.emit("input.rejected", request.scope, reason=reason)


async def _api_error_handler(request: Request, exc: Exception) -> Response:
    exc = cast(ApiError, exc)
    return problem(exc.status, exc.detail, errors=exc.errors, headers=exc.headers)


async def _http_handler(request: Request, exc: Exception) -> Response:
    exc = cast(StarletteHTTPException, exc)
    detail = exc.detail if isinstance(exc.detail, str) else "The request cannot be served."
    if exc.status_code == 404:
        detail = "No such resource."
    elif exc.status_code == 400 and exc.__cause__ is not None:
        # FastAPI's answer when the JSON parser itself fails (nesting too deep, an
        # integer of thousands of digits): malformed JSON like any other.
        _reject(request, "malformed JSON")
        detail = "The request body is not valid JSON."
    return problem(exc.status_code, detail, headers=exc.headers)


async def _security_handler(request: Request, exc: Exception) -> Response:
    exc = cast(SecurityError, exc)
    headers = {}
    if isinstance(exc, (RateLimited, Unavailable)):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unavailable):  # the hasher's line is full: the attempt is shed
        metrics = request.app.state.services.metrics
        if metrics is not None:
            metrics.shed.inc()
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return problem(exc.status, "The request cannot be served.", headers=headers)


async def _unavailable_handler(request: Request, exc: Exception) -> Response:
    logger.error("dependency unavailable: %s", type(exc).__name__)
    return problem(
        503,
        "A service this request needs is unavailable; try again shortly.",
        headers={"Retry-After": "2"},
    )


async def _unexpected_handler(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "Something went wrong on our side.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(ApiError, _api_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(SecurityError, _security_handler)
    app.add_exception_handler(DatabaseUnavailable, _unavailable_handler)
    app.add_exception_handler(StoreUnavailable, _unavailable_handler)
    app.add_exception_handler(Exception, _unexpected_handler)


def json_response(
    content: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Serialise with orjson; the content is already built from an allowlist."""
    return Response(
        orjson.dumps(content),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )

"""The OpenAPI document, made to say what the API really answers.

FastAPI's own document describes FastAPI's defaults: a 422 this API never sends (invalid
input is a 400 problem), no error responses, no security. :func:`install_openapi`
completes it once, when it is first asked for, by rules that follow from how the app
is built:

- every ``/api/*`` operation may answer 400 (a malformed request), 413 and 415 (the
  body limit and the JSON-only rule, which act before routing), 429 (the global limit)
  and 503 (a dependency is down), all as ``application/problem+json``;
- an operation whose dependencies include the current user declares the Bearer scheme
  and 401; one that needs the admin role, 403; one with a path parameter, 404;
- what only one route answers (409 on a taken email, say) is declared on that route,
  with :func:`problem_responses`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

__all__ = ["PROBLEM", "install_openapi", "problem_responses"]

PROBLEM = "application/problem+json"
_REF = {"$ref": "#/components/schemas/Problem"}
_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "title": "Problem",
        "description": "RFC 9457 problem details.",
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "additionalProperties": False,
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["pointer", "detail"],
                    "additionalProperties": False,
                    "properties": {
                        "pointer": {"type": "string", "description": "JSON Pointer, from #/"},
                        "detail": {"type": "string"},
                    },
                },
            },
        },
    },
    "Readiness": {
        "title": "Readiness",
        "type": "object",
        "required": ["status", "database", "store"],
        "additionalProperties": False,
        "properties": {
            "status": {"enum": ["ok", "unavailable"]},
            "database": {"enum": ["ok", "unavailable"]},
            "store": {"enum": ["ok", "unavailable"]},
        },
    },
}
_DESCRIPTIONS = {
    400: "The request is invalid (problem details, with pointers for fields).",
    401: "Missing, invalid, expired or revoked credentials.",
    403: "Authenticated, but not allowed.",
    404: "Not found, or not yours.",
    409: "The resource's state does not allow it.",
    413: "The request body is larger than the limit.",
    415: "The request body is not JSON.",
    429: "Rate limited or locked out.",
    503: "A dependency (database, store) is unavailable.",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}
_HEADERS = {
    401: {
        "WWW-Authenticate": {
            "description": "The scheme to authenticate with.",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}
_BEARER = {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: these statuses, each answered with problem details."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM: {"schema": _REF}},
        }
        if status in _HEADERS:
            response["headers"] = _HEADERS[status]
        out[status] = response
    return out


def _calls(dependant: Dependant) -> Iterable[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _add(operation: dict[str, Any], statuses: Iterable[int]) -> None:
    responses = operation.setdefault("responses", {})
    for status, response in problem_responses(*statuses).items():
        responses.setdefault(str(status), response)


def _complete(
    document: dict[str, Any],
    routers: Iterable[APIRouter],
    *,
    bearer: Callable[..., Any],
    admin: Callable[..., Any],
) -> dict[str, Any]:
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(_SCHEMAS)
    components.setdefault("securitySchemes", {}).update(_BEARER)
    for router in routers:
        for route in router.routes:
            if not isinstance(route, APIRoute) or not route.include_in_schema:
                continue
            calls = set(_calls(route.dependant))
            for method in route.methods or ():
                operation = document["paths"].get(route.path_format, {}).get(method.lower())
                if operation is None:
                    continue
                responses = operation.setdefault("responses", {})
                if "422" not in {str(s) for s in route.responses}:
                    responses.pop("422", None)  # FastAPI's default; this API answers 400
                if route.path_format.startswith("/api/"):
                    _add(operation, (400, 413, 415, 429, 503))
                if bearer in calls:
                    operation["security"] = [{"bearerAuth": []}]
                    _add(operation, (401,))
                if admin in calls:
                    _add(operation, (403,))
                if any(p.get("in") == "path" for p in operation.get("parameters", ())):
                    _add(operation, (404,))
                operation["responses"] = dict(sorted(responses.items()))
    readiness = document["paths"].get("/readyz", {}).get("get")
    if readiness is not None:
        for status, text in (("200", "Ready."), ("503", "The database or the store is down.")):
            readiness["responses"][status] = {
                "description": text,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}
                },
            }
    return document


def install_openapi(api: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Make ``api.openapi()`` (and ``/openapi.json``) answer the completed document."""
    from bastion.api.deps import admin_user, current_user

    generate = api.openapi
    routers = list(routers)
    completed: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not completed:
            completed.update(_complete(generate(), routers, bearer=current_user, admin=admin_user))
            api.openapi_schema = completed
        return completed

    api.openapi = openapi  # type: ignore[method-assign]

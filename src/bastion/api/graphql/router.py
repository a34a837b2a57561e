"""``POST /api/graphql``: the route, and how every outcome becomes an HTTP answer.

A request runs in this order, and stops at the first step that refuses it:

1. the security middleware, as for every ``/api/*`` request (global rate limit, 10 KiB
   body limit, JSON only);
2. the body: ``{query, variables?, operationName?, extensions?}``, strictly (a batch,
   a JSON array of queries, is refused: one request, one query);
3. the caller: no ``Authorization`` header is an anonymous caller (enough for
   ``products``); a header that is not a valid Bearer token is a 401, exactly as on REST;
4. the limits (:mod:`bastion.api.graphql.limits`): tokens, depth, aliases, ``first``;
5. strawberry's validation (plus no introspection in production), then execution.

Answers: 200 ``{"data": ...}`` when the query ran without error. Anything else is a
problem details answer, as everywhere in this API, never a 200 carrying errors: 400 for
a query over a limit or not valid (``errors`` names ``#/query`` or ``#/variables/...``),
401 (with ``WWW-Authenticate``) when ``me`` is asked for without a token, 503 when the
database is down, 500 for a bug (logged; the client gets nothing of it).

GET is not served (405): queries only over POST with a JSON body, so no link or form on
another site can run one. There is no GraphiQL page in any mode: it loads its scripts
from a CDN, which the API's Content-Security-Policy rightly refuses.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from graphql import GraphQLError, OperationDefinitionNode
from pydantic import BaseModel, ConfigDict, StringConstraints
from starlette.responses import Response
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from bastion.api.deps import Principal, Svc, current_user
from bastion.api.errors import ApiError, json_response
from bastion.api.graphql.limits import GraphQLLimits, QueryRejected, check_limits, parse_query
from bastion.api.graphql.schema import Context, build_schema
from bastion.api.openapi import problem_responses
from bastion.config import Settings
from bastion.db import DatabaseUnavailable
from bastion.security import SecurityError
from bastion.store import StoreUnavailable

__all__ = ["GraphQLRequest", "limits_from", "router"]

logger = logging.getLogger("bastion.api.graphql")

router = APIRouter(prefix="/api/graphql", tags=["graphql"])

INVALID = "The query is not valid for this API."
EXAMPLE = "{ products(first: 5) { id name priceCents currency cursor } }"


class GraphQLRequest(BaseModel):
    """A GraphQL request over HTTP. ``extensions`` is accepted (clients send it) and
    ignored."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        json_schema_extra={"examples": [{"query": EXAMPLE}]},
    )

    query: Annotated[str, StringConstraints(min_length=1)]
    variables: dict[str, Any] | None = None
    operationName: str | None = None
    extensions: dict[str, Any] | None = None


class GraphQLResponse(BaseModel):
    data: dict[str, Any]


def limits_from(settings: Settings) -> GraphQLLimits:
    return GraphQLLimits(
        max_depth=settings.graphql_max_depth,
        max_aliases=settings.graphql_max_aliases,
        max_tokens=settings.graphql_max_tokens,
        max_first=settings.graphql_max_first,
    )


async def optional_user(request: Request, services: Svc) -> Principal | None:
    """The caller, ``None`` without an ``Authorization`` header; a header that does not
    verify is a 401 (never quietly taken as anonymous)."""
    if "authorization" not in request.headers:
        return None
    return await current_user(request, services)


OptionalUser = Annotated[Principal | None, Depends(optional_user)]


@router.post(
    "",
    response_model=GraphQLResponse,
    responses=problem_responses(401),
    openapi_extra={"security": [{"bearerAuth": []}, {}]},
    summary="Run a read-only GraphQL query",
)
async def graphql(
    body: GraphQLRequest, request: Request, services: Svc, principal: OptionalUser
) -> Response:
    user_id = principal.user_id if principal else None
    limits = limits_from(services.settings)
    try:
        document = parse_query(body.query, limits)
        check_limits(document, body.variables or {}, limits)
    except QueryRejected as exc:
        services.events.emit("input.rejected", request.scope, user_id=user_id, reason=exc.reason)
        detail = " ".join(p.detail for p in exc.problems) if exc.over_limit else INVALID
        raise ApiError(
            400, detail, errors=[{"pointer": p.pointer, "detail": p.detail} for p in exc.problems]
        ) from None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if body.operationName is None and len(operations) > 1:
        # The spec's rule; left alone, strawberry would run the first one.
        raise _unnamed()
    schema = build_schema(production=services.settings.production)
    try:
        result = await schema.execute(
            body.query,
            variable_values=body.variables,
            context_value=Context.create(services, principal, limits, document),
            operation_name=body.operationName,
            allowed_operation_types=(OperationType.QUERY,),
        )
    except InvalidOperationTypeError:
        raise ApiError(400, "This endpoint is read-only: it runs queries only.") from None
    except (CannotGetOperationTypeError, MissingQueryError):
        raise _unnamed() from None
    if result.errors:
        raise _failure(result.errors, request, services, user_id)
    return json_response({"data": result.data})


def _unnamed() -> ApiError:
    return ApiError(
        400,
        "Name the operation to run: operationName must name one operation of the query.",
        errors=[{"pointer": "#/operationName", "detail": "names no operation of the query"}],
    )


def _failure(
    errors: list[GraphQLError], request: Request, services: Svc, user_id: str | None
) -> Exception:
    """The one answer for a query that failed: errors without a path are the request's
    (invalid query or variables: 400); errors with one come from a resolver, and say
    what went wrong in their original exception."""
    raised = [e.original_error for e in errors if e.path is not None]
    if not raised:
        services.events.emit(
            "input.rejected", request.scope, user_id=user_id, reason="graphql invalid query"
        )
        return ApiError(400, INVALID, errors=[_problem(e) for e in errors[:20]])
    for kinds in ((DatabaseUnavailable, StoreUnavailable), (SecurityError, ApiError)):
        for exc in raised:
            if isinstance(exc, kinds):
                return exc
    first = next((e for e in raised if e is not None), None)
    logger.error("GraphQL resolver failed", exc_info=first)
    return ApiError(500, "Something went wrong on our side.")


def _problem(error: GraphQLError) -> dict[str, str]:
    where = error.locations[0] if error.locations else None
    suffix = f" (line {where.line}, column {where.column})" if where else ""
    pointer = "#/variables" if error.message.startswith("Variable '$") else "#/query"
    return {"pointer": pointer, "detail": f"{error.message}{suffix}"}

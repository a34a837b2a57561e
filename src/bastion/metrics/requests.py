"""Requests by method, route template and status, and their latency.

:class:`RecordRequests` is the outermost layer, so that every answer counts, the
refusals sent before routing included (429, 413, shed 503s). It wraps neither
``receive`` nor ``send``: the status is the one :class:`RequestIdMiddleware` saw start
(``scope["bastion.response_status"]``), and the latency runs until the app returns, that
is after its last ``send``.

The route is the template of the route that answered (``scope["route"]``, set by the
router), else the template the path would reach (refusals and cached pages sent
before routing), else
:data:`UNMATCHED`: a raw path never becomes a label. The metric children are bound once
per (route, method, status) and looked up in nested dicts, so a request allocates no
label tuple.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any

from bastion.metrics.registry import Metrics
from bastion.security.asgi import ASGIApp, Receive, Scope, Send
from bastion.security.request_id import RESPONSE_STATUS_KEY

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["METHODS", "UNMATCHED", "RecordRequests", "RouteTemplates"]

logger = logging.getLogger("bastion.metrics")

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"


class RouteTemplates:
    """The template a path would reach among an app's routes: the OpenAPI paths (every
    API route, whatever router holds it) and the app's own top-level routes and mounts.
    Compiled on first use (the routes are all in place by then): a dict lookup for
    templates without parameters, a scan of the others."""

    __slots__ = ("_api", "_exact", "_patterns")

    def __init__(self, api: FastAPI) -> None:
        self._api = api
        self._exact: dict[str, str] | None = None
        self._patterns: list[tuple[re.Pattern[str], str]] = []

    def _compile(self) -> dict[str, str]:
        exact: dict[str, str] = {}
        try:
            paths = list(self._api.openapi().get("paths", {}))
        except Exception:  # a metric must never fail a request over a name
            logger.exception("cannot list the API's routes for the metrics")
            paths = []
        for path in sorted(paths, key=lambda p: (p.count("{"), p)):
            if "{" in path:
                pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path))
                self._patterns.append((re.compile(f"^{pattern}$"), path))
            else:
                exact[path] = path
        for route in self._api.routes:  # top-level routes and mounts (/static)
            own, compiled = getattr(route, "path", None), getattr(route, "path_regex", None)
            if isinstance(own, str) and isinstance(compiled, re.Pattern):
                exact.setdefault(own, own)
                self._patterns.append((compiled, own))
        self._exact = exact
        return exact

    def __call__(self, path: str) -> str:
        exact = self._exact if self._exact is not None else self._compile()
        found = exact.get(path)
        if found is not None:
            return found
        for regex, template in self._patterns:
            if regex.match(path):
                return template
        return UNMATCHED


class RecordRequests:
    """Counts every HTTP request and observes its latency in ``metrics``."""

    __slots__ = ("_children", "_metrics", "_templates", "app")

    def __init__(self, app: ASGIApp, metrics: Metrics, api: FastAPI) -> None:
        self.app = app
        self._metrics = metrics
        self._templates = RouteTemplates(api)
        # route -> method -> status -> (request counter, latency histogram)
        self._children: dict[str, dict[str, dict[int, tuple[Any, Any]]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) if route is not None else None
            if not isinstance(template, str):
                template = self._templates(scope["path"])
            # No status: the app raised before answering, and the server sends a 500.
            status = scope.get(RESPONSE_STATUS_KEY, 500)
            counter, histogram = self._child(template, scope["method"], status)
            counter.inc()
            histogram.observe(elapsed)

    def _child(self, template: str, method: str, status: int) -> tuple[Any, Any]:
        by_method = self._children.get(template)
        if by_method is None:
            by_method = self._children[template] = {}
        by_status = by_method.get(method)
        if by_status is None:
            if method not in METHODS:
                # Methods come from the client: any other one shares a single label.
                return self._child(template, OTHER_METHOD, status)
            by_status = by_method[method] = {}
        pair = by_status.get(status)
        if pair is None:
            m = self._metrics
            pair = by_status[status] = (
                m.requests.labels(method, template, str(status)),
                m.latency.labels(method, template),
            )
        return pair

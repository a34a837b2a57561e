"""Security events: one JSON object per line on standard output, redacted on the way out.

:class:`SecurityEventLog` builds ``{ts, event, ip, userId?, method, path, requestId,
reason?}`` from the ASGI scope, passes it through :func:`redact` and writes it with
structlog; an optional ``sink`` receives the same (redacted) record for storage.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any, Literal

import structlog

from bastion.security.asgi import Scope
from bastion.security.client_ip import client_ip
from bastion.security.redaction import redact, redact_text

__all__ = ["REQUEST_ID_KEY", "EventName", "SecurityEventLog", "configure_logging"]

REQUEST_ID_KEY = "bastion.request_id"
EventName = Literal[
    "auth.login.succeeded",
    "auth.login.failed",
    "auth.lockout",
    "auth.refresh.reuse_detected",
    "auth.token.rejected",
    "authz.denied",
    "input.rejected",
    "ratelimit.exceeded",
]
Sink = Callable[[dict[str, Any]], None]


def _redact_processor(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    return {k: redact(v, key=k) if k != "event" else v for k, v in event_dict.items()}


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stdout for structlog and the standard library, both redacted."""
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        _redact_processor,
        structlog.processors.JSONRenderer(),
    ]
    structlog.configure(
        processors=processors,
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _redact_processor,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True


class SecurityEventLog:
    def __init__(self, *, sink: Sink | None = None) -> None:
        self._log = structlog.get_logger("bastion.security")
        self.sink = sink

    def emit(
        self,
        event: EventName,
        scope: Scope,
        *,
        user_id: str | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        route = scope.get("route")
        path = getattr(route, "path", None) or scope.get("path", "")
        record: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "ts": datetime.now(UTC),
            "event": event,
            "ip": client_ip(scope),
            "user_id": user_id,
            "method": scope.get("method", ""),
            "path": redact_text(str(path))[:512],
            "request_id": scope.get(REQUEST_ID_KEY, ""),
            "reason": redact_text(reason)[:512] if reason else None,
        }
        self._log.warning(
            event,
            kind="security",
            ip=record["ip"],
            userId=user_id,
            method=record["method"],
            path=record["path"],
            requestId=record["request_id"],
            reason=record["reason"],
        )
        if self.sink is not None:
            self.sink(record)
        return record

"""Security events and the process's log lines: JSON on standard output, redacted.

:class:`SecurityEventLog` writes one JSON object per event::

    {"ts": "...Z", "event": "auth.login.failed", "ip": "203.0.113.9", "userId": "...",
     "method": "POST", "path": "/api/auth/login", "requestId": "...", "reason": "...",
     "level": "warning", "kind": "security"}

(``userId`` and ``reason`` only when known) and hands the same record to an optional
``sink`` that stores it. The path is a route's template (``/api/orders/{order_id}``),
never the path the client sent: ids, and whatever else a client puts in a path, stay
out. Before routing (a rate limit, say) ``route_path`` may name the template; failing
that, only the path's first segment is kept (``/api/*``).

Redaction is the last step before rendering, for events and for every other log line
(:func:`configure_logging` and :func:`logging_config` route the standard library, and
the loggers the caller names, a server's say, through the same processors), so no caller
can forget it.

The event names are the caller's: pass ``names`` and any other name is refused, so that
a misspelt event never lands in a log nobody alerts on.
"""

from __future__ import annotations

import logging
import logging.config
import re
import sys
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog

from bastion.security.asgi import Scope
from bastion.security.client_ip import client_ip
from bastion.security.redaction import REDACTED, redact, redact_text

__all__ = [
    "REQUEST_ID_KEY",
    "FirstPerWindow",
    "SecurityEventLog",
    "configure_logging",
    "json_formatter",
    "logging_config",
]

REQUEST_ID_KEY = "bastion.request_id"
Sink = Callable[[dict[str, Any]], None]
RoutePath = Callable[[Scope], str | None]
EventDict = MutableMapping[str, Any]
MAX_TEXT = 512


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _timestamp(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """``ts`` (kept if the caller gave one) and ``event`` lead every line."""
    ts = event_dict.pop("ts", None)
    stamp = _iso(ts if isinstance(ts, datetime) else datetime.now(UTC))
    return {"ts": stamp, "event": event_dict.pop("event", ""), **event_dict}


def _redact(_: Any, __: str, event_dict: EventDict) -> EventDict:
    # The event name is redacted as text too: for a standard-library record it is the
    # formatted message, which may quote a path or an exception.
    return {k: redact(v, key=k if k != "event" else "") for k, v in event_dict.items()}


def _processors() -> list[Any]:
    """The shared tail of every chain: render exceptions to text, then redact, then JSON."""
    return [
        structlog.processors.format_exc_info,
        _timestamp,
        _redact,
        structlog.processors.JSONRenderer(sort_keys=False),
    ]


class _Stdout:
    """``sys.stdout`` looked up at each write, so a replaced stdout (tests) is honoured."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def json_formatter() -> logging.Formatter:
    """A :mod:`logging` formatter that renders records as redacted JSON lines."""
    return structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_processors()],
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
        ],
    )


def logging_config(
    level: int | str = logging.INFO, *, loggers: Sequence[str] = ()
) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` mapping: every record as redacted JSON on
    stdout, those of ``loggers`` too (a server's, which install handlers of their own:
    theirs are removed, so nothing reaches a terminal unredacted). Give it to the
    server as its log config so that each worker process applies it too."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.json_formatter"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {name: {"handlers": [], "propagate": True} for name in loggers},
    }


def configure_logging(level: int = logging.INFO, *, loggers: Sequence[str] = ()) -> None:
    """JSON lines on stdout for structlog and the standard library, both redacted
    (``loggers``: as for :func:`logging_config`)."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            *_processors(),
        ],
        logger_factory=structlog.PrintLoggerFactory(_Stdout()),  # type: ignore[arg-type]
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    logging.config.dictConfig(logging_config(level, loggers=loggers))


# At most 10 characters: shorter than any password the service accepts (12).
_FIRST_SEGMENT = re.compile(r"^/[a-z][a-z0-9-]{0,9}(?=/|$)")
# Reasons are fixed text (Bastion's own never quote a client); a caller's reason that
# quotes something anyway keeps short words only, never one long enough to be a secret.
_QUOTED = re.compile(r"(?<![\w'\"])(?:'[^'\n]{9,}'|\"[^\"\n]{9,}\")(?![\w'\"])")


def _shape(path: str) -> str:
    """``/api/anything/else`` -> ``/api/*``: the part of a path no secret fits in."""
    first = _FIRST_SEGMENT.match(path)
    head = first.group(0) if first else ""
    return head + "/*" if path not in (head, head + "/") else path


def _clean(text: str) -> str:
    """Printable, bounded, redacted: safe for a log line and for any database column
    (PostgreSQL refuses NUL in text)."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: MAX_TEXT * 2])
    return redact_text(text)[:MAX_TEXT]


def _user_id(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


class SecurityEventLog:
    """Writes security events as JSON lines (``stream`` defaults to standard output) and
    passes each record to ``sink``, redacted, so that no event leaks a secret or a
    forged log line. The log line never depends on how, or whether, the application
    configured logging. ``names``: the events the caller defines; any other is refused
    (:class:`ValueError`), so that no misspelt name goes unnoticed."""

    def __init__(
        self,
        *,
        names: Collection[str] | None = None,
        sink: Sink | None = None,
        stream: TextIO | None = None,
        route_path: RoutePath | None = None,
    ) -> None:
        self.names = frozenset(names) if names is not None else None
        self.sink = sink
        self.route_path = route_path
        self._log = structlog.wrap_logger(
            structlog.PrintLogger(stream or _Stdout()),  # type: ignore[arg-type]
            processors=[structlog.processors.add_log_level, *_processors()],
            wrapper_class=structlog.BoundLogger,
        )

    def emit(
        self,
        event: str,
        scope: Scope,
        *,
        user_id: str | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Log the event and hand it to the sink; returns the stored record (snake_case
        keys, ``ts`` as an aware datetime)."""
        if self.names is not None and event not in self.names:
            raise ValueError(f"{event!r} is not one of this log's event names")
        record: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "ts": datetime.now(UTC),
            "event": event,
            "ip": _clean(client_ip(scope)),
            "user_id": _user_id(user_id),
            "method": _clean(str(scope.get("method", ""))),
            "path": _clean(self._path(scope)),
            "request_id": _clean(str(scope.get(REQUEST_ID_KEY, ""))),
            "reason": _clean(_QUOTED.sub(REDACTED, reason)) if reason else None,
        }
        line: dict[str, Any] = {
            "ts": record["ts"],
            "ip": record["ip"],
            "method": record["method"],
            "path": record["path"],
            "requestId": record["request_id"],
        }
        if record["user_id"] is not None:
            line["userId"] = record["user_id"]
        if record["reason"] is not None:
            line["reason"] = record["reason"]
        self._log.warning(event, kind="security", **line)
        if self.sink is not None:
            self.sink(record)
        return record

    def _path(self, scope: Scope) -> str:
        template = getattr(scope.get("route"), "path", None)
        if template is None and self.route_path is not None:
            template = self.route_path(scope)
        if isinstance(template, str) and template:
            return template
        return _shape(str(scope.get("path", "")))


class FirstPerWindow:
    """Lets the first event of each ``(key, window)`` through and counts the rest.

    A client over its limit can send thousands of requests a second; one log line and
    one stored record for each would turn the flood into a second one, in the logs and
    the database (it made a refusal cost as much as a served request). The first refusal
    of each window is logged; the ones after it are counted and reported with the first
    refusal of the key's next window. At most ``max_keys`` keys are remembered (the
    least recently refused are forgotten), so rotating addresses cannot grow it without
    bound; a forgotten key simply logs again.
    """

    def __init__(self, max_keys: int = 10_000) -> None:
        self._max = max_keys
        self._seen: OrderedDict[str, tuple[int, int]] = OrderedDict()

    def first(self, key: str, window: int) -> int | None:
        """``None`` when ``(key, window)`` was already let through (this one is counted);
        else how many were counted for the key's previous window."""
        entry = self._seen.get(key)
        if entry is not None and entry[0] == window:
            self._seen[key] = (window, entry[1] + 1)
            return None
        self._seen[key] = (window, 0)
        self._seen.move_to_end(key)
        if len(self._seen) > self._max:
            self._seen.popitem(last=False)
        return entry[1] if entry is not None else 0

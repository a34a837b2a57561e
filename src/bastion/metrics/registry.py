"""Every metric the service exports, in one place (``docs/metrics.md`` describes each).

Label values come from small fixed sets only: route templates, methods, status codes,
limit names. Nothing a client sends (an address, an email, a raw path) ever becomes a
label, so neither the series count nor what a scrape reveals depends on the traffic.

Under ``bastion serve`` the values live in ``PROMETHEUS_MULTIPROC_DIR`` (one file per
worker process, merged at scrape time: :mod:`bastion.metrics.exporter`); each gauge says
how its workers' values combine (``livesum``, ``livemax``) and counts live workers only.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["LATENCY_BUCKETS", "Limit", "Metrics"]

Limit = Literal["global", "auth", "lockout"]

# Seconds. From a refusal served from memory (~0.1 ms) to a login under load (~1 s).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The metric objects of one app. Each instance registers in a registry of its own
    (``registry``, for tests and embedding); in multiprocess mode the values go to the
    worker's files whatever the registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "bastion_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "bastion_http_request_duration_seconds",
            "Time from a request's arrival to its last byte sent, by method and route.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.refusals = Counter(
            "bastion_limit_refusals",
            "Requests refused (429) by a limit: global (per client), auth (failed "
            "attempts per client), lockout (failed logins per account or device).",
            ["limit"],
            registry=r,
        )
        self.lockouts = Counter(
            "bastion_lockouts_started",
            "Accounts (or devices) locked out: failed logins that spent the lockout budget.",
            registry=r,
        )
        self.hasher_busy = Gauge(
            "bastion_hasher_busy_slots",
            "Password hashes running now.",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.hasher_waiting = Gauge(
            "bastion_hasher_waiting",
            "Password attempts holding a place in the hasher's line.",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.hasher_slots = Gauge(
            "bastion_hasher_slots",
            "Password hashes that may run at once (both classes of attempt).",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.shed = Counter(
            "bastion_hasher_shed",
            "Password attempts refused with 503 because the hasher's line was full.",
            registry=r,
        )
        self.store_errors = Counter(
            "bastion_store_errors",
            "Store operations that failed (StoreUnavailable), refused by an open circuit included.",
            registry=r,
        )
        self.database_errors = Counter(
            "bastion_database_errors",
            "Database operations that failed (DatabaseUnavailable).",
            registry=r,
        )
        self.store_circuit_open = Gauge(
            "bastion_store_circuit_open",
            "1 while a worker's store circuit is not closed (since a connection failure, "
            "until an operation succeeds again).",
            multiprocess_mode="livemax",
            registry=r,
        )
        self.events_pending = Gauge(
            "bastion_security_events_pending",
            "Security events logged but not yet stored in the database.",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.revocation_lag = Gauge(
            "bastion_revocation_sync_lag_seconds",
            "Seconds since a worker last confirmed its revocation flags in sync with the "
            "database (the worst worker).",
            multiprocess_mode="livemax",
            registry=r,
        )
        self.draining = Gauge(
            "bastion_draining",
            "1 once a worker has been told to stop (SIGTERM) and /readyz answers 503.",
            multiprocess_mode="livemax",
            registry=r,
        )

        # Bound once: a refusal under a flood costs no label lookup, and every series
        # exists (at 0) from the start, as rate() and alerts need.
        self._refusals = {n: self.refusals.labels(n) for n in ("global", "auth", "lockout")}

    def refused(self, limit: Limit) -> None:
        """Count one request refused by ``limit``."""
        self._refusals[limit].inc()

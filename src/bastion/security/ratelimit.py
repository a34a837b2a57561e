"""The global per-client rate limit, with the IETF RateLimit header fields.

Header syntax: draft-ietf-httpapi-ratelimit-headers-10, one list member per policy
that applies to the request (``RateLimit-Policy: "global";q=100;w=900`` and
``RateLimit: "global";r=99;t=900``). Other limits met while handling the request (the
auth limit, say) add their members through :func:`add_policy`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from bastion.security.asgi import ASGIApp, Message, Receive, Scope, Send
from bastion.security.client_ip import client_ip, rate_key
from bastion.security.limits import Rate
from bastion.security.problems import send_problem
from bastion.store import Hit, MemoryStore, Store, StoreUnavailable

__all__ = [
    "FLAGGED_KEY",
    "POLICIES_KEY",
    "RateLimitConfig",
    "RateLimitMiddleware",
    "add_policy",
    "retry_after",
    "revocation_flag",
]

POLICIES_KEY = "bastion.ratelimit.policies"
# Set to whether the flag that ``flag_for`` named is raised, when it was looked up.
FLAGGED_KEY = "bastion.ratelimit.flagged"
logger = logging.getLogger("bastion.ratelimit")

OnExceeded = Callable[[Scope, str, Hit], Awaitable[None]]

# How much earlier than the store's window end a locally known refusal lapses: the store
# computed reset_after before its answer travelled back, so without a margin the local
# note could outlive the window by that trip.
_OVER_MARGIN = 0.1
_OVER_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """A budget per client IP for paths under ``prefix`` (every path by default);
    ``exempt`` paths are never counted (health checks, say). ``problem_base``: the URL
    the 429's problem type is under (``about:blank`` without one)."""

    rate: Rate
    name: str = "global"
    prefix: str = "/"
    exempt: frozenset[str] = frozenset()
    problem_base: str | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError("a policy name must be a plain token")


def revocation_flag(scope: Scope) -> bool | None:
    """Whether the flag that ``flag_for`` named for this request is raised, as the
    limiter's own round trip found it; ``None`` when it was not looked up (no flag
    named, or the store down): then the caller must ask the store itself, never
    take the absence for "not revoked"."""
    flagged: bool | None = scope.get(FLAGGED_KEY)
    return flagged


def retry_after(hit: Hit) -> int:
    return max(1, math.ceil(hit.reset_after))


def add_policy(scope: Scope, name: str, rate: Rate, hit: Hit) -> None:
    """Report a policy in this response's RateLimit header fields (again: the latest
    report of a name replaces the earlier one, e.g. once a slot is given back)."""
    policies = scope.get(POLICIES_KEY)
    if policies is not None:
        policies[:] = [p for p in policies if p[0] != name]
        policies.append((name, rate, hit))


def _headers(policies: list[tuple[str, Rate, Hit]]) -> list[tuple[bytes, bytes]]:
    policy = ", ".join(f'"{n}";q={r.count};w={r.window}' for n, r, _ in policies)
    state = ", ".join(f'"{n}";r={h.remaining};t={math.ceil(h.reset_after)}' for n, _, h in policies)
    return [(b"ratelimit-policy", policy.encode()), (b"ratelimit", state.encode())]


class RateLimitMiddleware:
    """Takes one slot per request from the client's budget in one store round trip.

    When the store is unreachable the limit falls back to a per-process budget (and
    says so in the log) rather than letting requests through unlimited.
    """

    def __init__(
        self,
        app: ASGIApp,
        config: RateLimitConfig,
        store: Store,
        *,
        on_exceeded: OnExceeded | None = None,
        flag_for: Callable[[Scope], str | None] | None = None,
    ) -> None:
        self.app = app
        self.config = config
        self.store = store
        self.fallback = MemoryStore()
        self.on_exceeded = on_exceeded
        self.flag_for = flag_for
        self._key_prefix = f"rl:{config.name}:"
        self._degraded = False
        # Clients known to be over their budget, until (about) when their window ends.
        # Windows are fixed and this limit never gives a slot back, so a client over
        # its budget stays over until the window ends whatever other instances do:
        # refusing it here is exactly what the store would answer, without the round
        # trip (under a flood, that trip was most of the cost of a refusal).
        self._over: dict[str, tuple[float, Hit]] = {}

    async def _hit(self, key: str, scope: Scope) -> Hit:
        rate = self.config.rate
        flag = self.flag_for(scope) if self.flag_for is not None else None
        try:
            hit = await self.store.hit(key, limit=rate.count, window=rate.window, check_flag=flag)
        except StoreUnavailable as exc:
            if not self._degraded:
                self._degraded = True
                logger.warning("store unreachable (%s): global limit is per-process now", exc)
            return await self.fallback.hit(key, limit=rate.count, window=rate.window)
        if self._degraded:
            self._degraded = False
            logger.warning("store reachable again: global limit is shared again")
        if flag is not None:
            scope[FLAGGED_KEY] = hit.flagged
        return hit

    def _known_over(self, key: str) -> Hit | None:
        over = self._over.get(key)
        if over is None:
            return None
        left = over[0] - time.monotonic()
        if left <= 0:
            del self._over[key]
            return None
        return replace(over[1], reset_after=left + _OVER_MARGIN)

    def _note_over(self, key: str, hit: Hit) -> None:
        if hit.reset_after <= _OVER_MARGIN:
            return
        if len(self._over) >= _OVER_ENTRIES:
            now = time.monotonic()
            self._over = {k: v for k, v in self._over.items() if v[0] > now}
            if len(self._over) >= _OVER_ENTRIES:
                self._over.clear()
        self._over[key] = (time.monotonic() + hit.reset_after - _OVER_MARGIN, hit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if not path.startswith(self.config.prefix) or path in self.config.exempt:
            await self.app(scope, receive, send)
            return
        key = self._key_prefix + rate_key(client_ip(scope))
        hit = self._known_over(key)
        if hit is None:
            hit = await self._hit(key, scope)
            if not hit.allowed:
                self._note_over(key, hit)
        policies: list[tuple[str, Rate, Hit]] = [(self.config.name, self.config.rate, hit)]
        if not hit.allowed:
            if self.on_exceeded is not None:
                await self.on_exceeded(scope, self.config.name, hit)
            await send_problem(
                send,
                429,
                "Too many requests from this client; try again later.",
                headers=[*_headers(policies), (b"retry-after", str(retry_after(hit)).encode())],
                base=self.config.problem_base,
            )
            return
        scope[POLICIES_KEY] = policies

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *_headers(policies)]
            await send(message)

        await self.app(scope, receive, send_with_headers)

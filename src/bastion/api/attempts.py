"""Password attempts against the guard: reserve before any hash, give back on success.

Shared by every route that checks a password (login, register, password change), so
that each one is counted, refused and settled the same way."""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request

from bastion.api.deps import Services
from bastion.api.errors import ApiError
from bastion.security.client_ip import client_ip
from bastion.security.events import EventName
from bastion.security.guard import AttemptRefused, Reservation
from bastion.security.passwords import Place
from bastion.security.ratelimit import add_policy
from bastion.store import StoreUnavailable

__all__ = ["admit", "failed", "give_back", "reserve", "store_down"]


def store_down() -> ApiError:
    return ApiError(
        503, "Sign-in is unavailable for a moment; try again shortly.", headers={"Retry-After": "5"}
    )


def admit(services: Services, *, trusted: bool) -> Place:
    """The attempt's place in the hasher's line, or 503 at once when the line is full:
    before the store round trip and the database lookup, which under a flood cost more
    than the refusal (a refused attempt is not an attempt: it counts toward no limit).
    Taken now, not when the hash is due, so that the attempts admitted while this one
    does that work cannot overfill the line."""
    return services.hasher.admit(trusted=trusted)


async def reserve(
    services: Services, request: Request, *, account: str | None, device: str | None
) -> Reservation:
    """The attempt's slots, taken before any password is looked at (429 when a budget
    is spent, 503 when the store cannot say: a limit is never skipped)."""
    guard = services.guard
    try:
        reservation = await guard.reserve(
            ip=client_ip(request.scope), account=account, device=device
        )
    except StoreUnavailable:
        raise store_down() from None
    except AttemptRefused as exc:
        if services.metrics is not None:
            services.metrics.refused("auth" if exc.reason == "auth limit" else "lockout")
        if exc.ip_hit is not None:
            add_policy(request.scope, "auth", guard.config.per_ip, exc.ip_hit)
        event: EventName = "ratelimit.exceeded" if exc.reason == "auth limit" else "auth.lockout"
        services.events.emit(event, request.scope, reason=exc.reason)
        raise
    if reservation.ip_hit is not None:
        add_policy(request.scope, "auth", guard.config.per_ip, reservation.ip_hit)
    return reservation


async def give_back(services: Services, request: Request, reservation: Reservation) -> None:
    """The attempt succeeded (or was never judged): its slots do not count."""
    try:
        await services.guard.succeeded(reservation)
    except StoreUnavailable:
        return  # the slot expires with its window; never fail a success over it
    hit = reservation.ip_hit
    if hit is not None:
        hit = replace(hit, count=max(0, hit.count - 1))
        add_policy(request.scope, "auth", services.guard.config.per_ip, hit)


def failed(
    services: Services,
    request: Request,
    reservation: Reservation,
    *,
    user_id: str | None,
    reason: str,
    device: bool = False,
) -> None:
    """A wrong password: ``auth.login.failed``, and ``auth.lockout`` when this failure
    spent the account's (or the device's) last slot. The slot stays taken."""
    services.events.emit("auth.login.failed", request.scope, user_id=user_id, reason=reason)
    hit = reservation.lock_hit
    if hit is not None and hit.count >= hit.limit:
        if services.metrics is not None:
            services.metrics.lockouts.inc()
        locked = "device locked" if device else "account locked"
        services.events.emit("auth.lockout", request.scope, user_id=user_id, reason=locked)

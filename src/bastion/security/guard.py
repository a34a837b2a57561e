"""Layered defences against password guessing: a per-IP budget of failures, a
per-account lockout, and device cookies that keep a real user out of the lockout.

Every limit *reserves before it acts*: an attempt takes its slots before the password
is checked, and a success gives them back. So N parallel wrong guesses can never get
past a budget of fewer than N, whatever the timing, and successes never count. The
slots of one attempt are taken together, atomically, or not at all: an attempt refused
by one budget holds no slot of another, even for a moment.

Device cookies follow OWASP's "Slow Down Online Guessing Attacks with Device Cookies":
an attempt that carries a valid device cookie for the account is charged to that
device alone, so failures made elsewhere (against the account, or from the same
address) never refuse it, and its own failures lock out only that device.

All the guard's keys share one store hash tag, ``{<name>}``, so that one attempt is one
atomic operation on Redis Cluster too.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from bastion.security.client_ip import rate_key
from bastion.security.exceptions import AttemptRefused, InvalidCredentials, Refusal
from bastion.security.limits import Rate
from bastion.store import Budget, Hit, Store, StoreUnavailable

__all__ = [
    "Attempt",
    "AttemptGuard",
    "AttemptObserver",
    "AttemptRefused",
    "GuardConfig",
    "Reservation",
]


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """``per_ip``: failed attempts per client address (login and register);
    ``per_account``: failed logins per account, or per device cookie. ``key`` (up to 32
    bytes, the same on every instance sharing the store) keys the digest that names
    accounts in the store: without it, anyone holding a dump of the store could test
    guessed emails against the key names."""

    per_ip: Rate
    per_account: Rate
    name: str = "auth"
    key: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError("a guard name must be a plain token")
        if len(self.key) > 32:
            raise ValueError("the guard key is at most 32 bytes (BLAKE2s)")


@dataclass(frozen=True, slots=True)
class Reservation:
    """The slots one attempt holds. ``ip_hit`` is ``None`` for a device-cookie login
    (charged to the device alone); ``lock_hit`` is ``None`` for a registration."""

    ip_key: str | None
    ip_hit: Hit | None
    lock_key: str | None
    lock_hit: Hit | None


def _retry_after(hits: list[Hit]) -> int:
    return max(1, math.ceil(max(h.reset_after for h in hits)))


class AttemptGuard:
    """Reserves, refuses and settles password attempts against a :class:`Store`.

    Every method raises :class:`~bastion.store.StoreUnavailable` when the store cannot
    answer; callers must then fail closed (503), never skip the check.
    """

    def __init__(
        self, store: Store, config: GuardConfig, observer: AttemptObserver | None = None
    ) -> None:
        self.store = store
        self.config = config
        self.observer = observer
        self._tag = f"{{{config.name}}}"

    @asynccontextmanager
    async def attempt(
        self,
        *,
        ip: str,
        account: str | None = None,
        device: str | None = None,
        scope: Any = None,
    ) -> AsyncIterator[Attempt]:
        """One password attempt, reserved on entry and settled on exit.

        Entry takes the slots (:meth:`reserve`): :class:`AttemptRefused` when a budget
        is spent, :class:`~bastion.store.StoreUnavailable` when the store cannot say
        (never a skipped limit). Then the block is judged by how it ends:

        - it ends normally: a success, the slots go back (a store failure then is
          swallowed: the slots expire with their window);
        - it raises :class:`InvalidCredentials`, or called :meth:`Attempt.fail`: a
          failure, the slots stay taken, whatever it raises;
        - it raises anything else: never judged (hasher saturated, database down),
          the slots go back and the exception propagates.

        ``scope`` is the ASGI scope, carried for the observer."""
        attempt = Attempt(self, ip=ip, account=account, device=device, scope=scope)
        try:
            attempt.reservation = await self.reserve(ip=ip, account=account, device=device)
        except AttemptRefused as exc:
            if self.observer is not None:
                self.observer.refused(attempt, exc)
            raise
        try:
            yield attempt
        except InvalidCredentials as exc:
            attempt.fail(exc.reason)
            raise
        except Exception:
            if attempt._settling is not None:
                await attempt._settling
            elif attempt.failure is None:
                await attempt._give_back()
            raise
        else:
            # After :meth:`Attempt.succeed` the caller awaits the settling itself.
            if attempt.failure is None and attempt._settling is None:
                attempt.judged = True
                await attempt._give_back()
        finally:
            if attempt.failure is not None and self.observer is not None:
                self.observer.failed(attempt, attempt.failure)

    def ip_key(self, ip: str) -> str:
        return f"{self._tag}ip:{rate_key(ip)}"

    def _digest(self, value: str) -> str:
        # Keys never hold an email in clear, and with a key they cannot be recomputed
        # from a guessed one either: a dump of the store lists no accounts.
        return hashlib.blake2s(value.encode(), digest_size=16, key=self.config.key).hexdigest()

    def account_key(self, account: str) -> str:
        """``account`` is the normalised email (known or not: unknown emails lock out
        the same way, so the lockout tells nobody which accounts exist)."""
        return f"{self._tag}acct:{self._digest(account)}"

    def device_key(self, device: str) -> str:
        return f"{self._tag}dev:{self._digest(device)}"

    async def reserve(
        self, *, ip: str, account: str | None = None, device: str | None = None
    ) -> Reservation:
        """Take the attempt's slots: the IP's and the account's for a login, the IP's
        for a registration (``account=None``), the device's alone for a login that
        carries a valid device cookie. Raises :class:`AttemptRefused`, taking nothing,
        when any of them is spent."""
        per_ip, per_lock = self.config.per_ip, self.config.per_account
        budgets: list[Budget] = []
        ip_key = lock_key = None
        if device is None:
            ip_key = self.ip_key(ip)
            budgets.append(Budget(ip_key, per_ip.count, per_ip.window))
        if device is not None:
            lock_key = self.device_key(device)
        elif account is not None:
            lock_key = self.account_key(account)
        if lock_key is not None:
            budgets.append(Budget(lock_key, per_lock.count, per_lock.window))
        hits = await self.store.take(budgets)
        ip_hit = hits[0] if ip_key is not None else None
        lock_hit = hits[-1] if lock_key is not None else None
        spent = [h for h in hits if not h.allowed]
        if spent:
            reason: Refusal = "auth limit"
            if lock_hit is not None and not lock_hit.allowed:
                reason = "device locked" if device is not None else "account locked"
            raise AttemptRefused(reason, retry_after=_retry_after(spent), ip_hit=ip_hit)
        return Reservation(ip_key, ip_hit, lock_key, lock_hit)

    async def succeeded(self, reservation: Reservation) -> None:
        """Successes do not count: give the IP slot back and clear the lockout count of
        the account (or device) the attempt was charged to, in one operation."""
        release = []
        if reservation.ip_key is not None and reservation.ip_hit is not None:
            release.append((reservation.ip_key, reservation.ip_hit.window))
        reset = [reservation.lock_key] if reservation.lock_key is not None else []
        await self.store.give_back(release=release, reset=reset)

    async def locked_until(self, account: str) -> float | None:
        """Seconds until the account's lockout window frees, if it is locked now."""
        hit = await self.store.peek(self.account_key(account), limit=self.config.per_account.count)
        return None if hit.allowed else hit.reset_after

    async def unlock(self, account: str) -> None:
        await self.store.reset(self.account_key(account))


class AttemptObserver(Protocol):
    """What a caller hears of the attempts a guard settles (events, metrics, response
    headers). Each hook may do nothing; none may raise."""

    def refused(self, attempt: Attempt, exc: AttemptRefused) -> None:
        """A budget was spent: the attempt took nothing and was never made."""

    def failed(self, attempt: Attempt, reason: str) -> None:
        """A failure: its slots stay taken (``attempt.locked``: it spent the last)."""

    def succeeded(self, attempt: Attempt) -> None:
        """Its slots went back: a success (``attempt.judged``), or an attempt never
        judged (its exception propagates)."""


class Attempt:
    """One attempt inside :meth:`AttemptGuard.attempt`. ``reservation``: the slots it
    holds (``ip_hit``/``lock_hit`` for RateLimit fields); ``user``: the account's id,
    for the observer, once the caller knows it."""

    __slots__ = (
        "_guard",
        "_settling",
        "account",
        "device",
        "failure",
        "ip",
        "judged",
        "reservation",
        "scope",
        "user",
    )

    def __init__(
        self, guard: AttemptGuard, *, ip: str, account: str | None, device: str | None, scope: Any
    ) -> None:
        self._guard = guard
        self.ip = ip
        self.account = account
        self.device = device
        self.scope = scope
        self.reservation = Reservation(None, None, None, None)
        self.failure: str | None = None
        self.judged = False
        self.user: str | None = None
        self._settling: asyncio.Task[None] | None = None

    def fail(self, reason: str) -> None:
        """Judge the attempt a failure without raising (a weak password at
        registration, say): its slots stay taken when the block ends."""
        if self.failure is None:
            self.failure = reason
        self.judged = True

    def succeed(self) -> asyncio.Task[None]:
        """Judge the attempt a success now, inside the block, and start giving its
        slots back: what the caller does next (write the session, say) runs beside
        that store round trip instead of after it. The block's end then leaves the
        settling to the task returned, which the caller awaits before it answers."""
        if self._settling is None:
            self.judged = True
            self._settling = asyncio.ensure_future(self._give_back())
        return self._settling

    @property
    def locked(self) -> bool:
        """Whether this failure spent the last slot of the account's (or device's)
        lockout budget: the next attempt on it is refused."""
        hit = self.reservation.lock_hit
        return self.failure is not None and hit is not None and hit.count >= hit.limit

    async def _give_back(self) -> None:
        try:
            await self._guard.succeeded(self.reservation)
        except StoreUnavailable:
            return  # the slots expire with their window; never fail a success over it
        if self._guard.observer is not None:
            self._guard.observer.succeeded(self)

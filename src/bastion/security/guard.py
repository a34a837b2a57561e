"""Layered defences against password guessing: a per-IP budget of failures, a
per-account lockout, and device cookies that keep a real user out of the lockout.

Every limit *reserves before it acts*: an attempt takes its slots before the password
is checked, and a success gives them back. So N parallel wrong guesses can never get
past a budget of fewer than N, whatever the timing, and successes never count.

Device cookies follow OWASP's "Slow Down Online Guessing Attacks with Device Cookies":
an attempt carrying a valid device cookie for the account counts against that device
alone, so failures made elsewhere do not lock it out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bastion.security.exceptions import RateLimited
from bastion.security.limits import Rate
from bastion.store import Hit, Store

__all__ = ["AttemptGuard", "GuardConfig", "Reservation"]


@dataclass(frozen=True, slots=True)
class GuardConfig:
    per_ip: Rate
    per_account: Rate


@dataclass(frozen=True, slots=True)
class Reservation:
    ip_key: str
    ip_hit: Hit
    account_key: str | None
    account_hit: Hit | None


def _digest(value: str) -> str:
    # Keys never hold an email in clear, so a dump of the store reveals no accounts.
    return hashlib.blake2s(value.encode(), digest_size=16).hexdigest()


class AttemptGuard:
    def __init__(self, store: Store, config: GuardConfig, *, name: str = "auth") -> None:
        self.store = store
        self.config = config
        self.name = name

    def account_key(self, account: str, device: str | None) -> str:
        if device is not None:
            return f"lock:dev:{_digest(device)}"
        return f"lock:acct:{_digest(account)}"

    async def reserve(
        self, *, ip: str, account: str | None, device: str | None = None
    ) -> Reservation:
        """Take one slot from the IP's budget and, for a login, one from the account's
        (or the device's). Raises :class:`RateLimited` (taking nothing) when either is
        spent. :class:`StoreUnavailable` propagates: callers fail closed."""
        per_ip = self.config.per_ip
        ip_key = f"rl:{self.name}:{ip}"
        ip_hit = await self.store.hit(ip_key, limit=per_ip.count, window=per_ip.window)
        if not ip_hit.allowed:
            raise RateLimited("auth limit", retry_after=max(1, int(ip_hit.reset_after + 0.999)))
        if account is None:
            return Reservation(ip_key, ip_hit, None, None)
        per_account = self.config.per_account
        account_key = self.account_key(account, device)
        account_hit = await self.store.hit(
            account_key, limit=per_account.count, window=per_account.window
        )
        if not account_hit.allowed:
            await self.store.release(ip_key, window=ip_hit.window)
            raise RateLimited(
                "account locked", retry_after=max(1, int(account_hit.reset_after + 0.999))
            )
        return Reservation(ip_key, ip_hit, account_key, account_hit)

    async def succeeded(self, reservation: Reservation) -> None:
        """Successes do not count: give the IP slot back and clear the account's count."""
        await self.store.release(reservation.ip_key, window=reservation.ip_hit.window)
        if reservation.account_key is not None:
            await self.store.reset(reservation.account_key)

    async def locked_until(self, account: str) -> float | None:
        """Seconds until the account's lockout window frees, if it is locked now."""
        hit = await self.store.peek(
            self.account_key(account, None), limit=self.config.per_account.count
        )
        return None if hit.allowed else hit.reset_after

    async def unlock(self, account: str) -> None:
        await self.store.reset(self.account_key(account, None))

"""Registration, login and password change: each password attempt reserved, judged
and settled by the attempt guard, each password hashed within the hasher's bounds.

No HTTP here: the caller hands in plain values (the email, the password, the client's
address, the ASGI scope for the events) and turns the :class:`BastionError` raised
into its own answer: :class:`InvalidCredentials` for a wrong password or an unknown
account, :class:`WeakPassword`, :class:`IntegrityConflict` for a taken email,
:class:`AttemptRefused` or :class:`Unavailable` when the attempt is not made at all.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from bastion.api.password_context import password_context
from bastion.db import Database, IntegrityConflict, users
from bastion.db.database import Row
from bastion.security import (
    AttemptGuard,
    BastionError,
    InvalidCredentials,
    PasswordHasher,
    SecurityEventLog,
)

__all__ = ["Accounts", "WeakPassword"]

T = TypeVar("T")


class WeakPassword(BastionError):
    """A password refused by the strength checks (``problems``: why, for the user)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("weak password")
        self.problems = problems


def _background(work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """``work`` started now, to run beside what the caller awaits next. Whatever it
    raises is marked retrieved, so a task the caller abandons (its attempt was refused
    first) logs no "exception was never retrieved"."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return task


@dataclass(frozen=True, slots=True)
class Accounts:
    """The account use cases over the service's database, hasher, guard and events."""

    db: Database
    hasher: PasswordHasher
    guard: AttemptGuard
    events: SecurityEventLog

    async def register(self, *, email: str, name: str, password: str, ip: str, scope: Any) -> Row:
        """A new account. A weak password (:class:`WeakPassword`) or a taken email
        (:class:`IntegrityConflict`) is a failed attempt and keeps its slot: that also
        bounds how fast anyone can probe which emails are registered."""
        with self.hasher.admit(trusted=False) as place:
            async with self.guard.attempt(ip=ip, account=None, scope=scope) as attempt:
                problems = await self.hasher.problems(
                    password, context=password_context(email, name), place=place
                )
                if problems:
                    attempt.fail("weak password")
                    self.events.emit("input.rejected", scope, reason="weak password")
                    raise WeakPassword(problems)
                password_hash = await self.hasher.hash(password)
                try:
                    row = await users.create_user(
                        self.db,
                        user_id=str(uuid.uuid4()),
                        email=email,
                        name=name,
                        password_hash=password_hash,
                        role="user",
                        now=datetime.now(UTC),
                    )
                except IntegrityConflict:
                    attempt.fail("email taken")
                    raise
        return row

    async def log_in(
        self,
        *,
        email: str,
        password: str,
        ip: str,
        scope: Any,
        device: str | None,
        start: Callable[[str], Awaitable[T]],
    ) -> tuple[Row, T]:
        """The account behind ``email`` and ``password``, and what ``start`` made of
        it (the session). ``device``: the id of a valid device cookie issued for this
        account, which charges the attempt to that device alone. The limits are settled
        before any hashing: a refused attempt costs no Argon2."""
        trusted = device is not None
        with self.hasher.admit(trusted=trusted) as place:
            # A returning device's account row is read in the same round as its
            # reservation (reading it judges nothing); an untrusted attempt, what a
            # flood is made of, reads nothing until its slot is taken.
            early = _background(users.get_user_by_email(self.db, email=email)) if trusted else None
            async with self.guard.attempt(
                ip=ip, account=email, device=device, scope=scope
            ) as attempt:
                if early is not None:
                    row = await early
                else:
                    row = await users.get_user_by_email(self.db, email=email)
                attempt.user = row["id"] if row else None
                await self.hasher.verify(
                    row["password_hash"] if row else None, password, trusted=trusted, place=place
                )
                if row is None:  # unreachable: verify() raises for unknown accounts
                    raise InvalidCredentials("unknown account")
                # The slots go back while the session is written: one round, not two.
                given_back = attempt.succeed()
        try:
            if self.hasher.needs_rehash(row["password_hash"]):
                new_hash = await self.hasher.hash(password)
                await users.update_password_hash(
                    self.db, user_id=row["id"], password_hash=new_hash, now=None
                )
            session = await start(row["id"])
        finally:
            await given_back
        self.events.emit("auth.login.succeeded", scope, user_id=row["id"])
        return row, session

    async def change_password(
        self,
        *,
        user_id: str,
        current: str,
        new: str,
        ip: str,
        scope: Any,
        end_other_sessions: Callable[[], Awaitable[int]],
    ) -> Row | None:
        """Replace the password of ``user_id`` (``None`` when there is no such user).
        The current password is a password guess like any login: it spends the IP's
        auth budget and the account's lockout, reserved before any hashing or strength
        check, so a stolen access token cannot be used to guess the password behind it
        (and take the account over), nor make the server do costly work past the
        limits. :class:`InvalidCredentials` when it is wrong, :class:`WeakPassword`
        for the new one; then every other session ends (``end_other_sessions``)."""
        row = await users.get_user(self.db, user_id=user_id)
        if row is None:
            return None
        with self.hasher.admit(trusted=False) as place:
            async with self.guard.attempt(ip=ip, account=row["email"], scope=scope) as attempt:
                attempt.user = user_id
                try:
                    await self.hasher.verify(row["password_hash"], current, place=place)
                except InvalidCredentials:
                    attempt.fail("wrong current password on password change")
                    raise
        problems = await self.hasher.problems(
            new, context=password_context(row["email"], row["name"])
        )
        if problems:
            raise WeakPassword(problems)
        new_hash = await self.hasher.hash(new)
        await users.update_password_hash(
            self.db, user_id=user_id, password_hash=new_hash, now=datetime.now(UTC)
        )
        ended = await end_other_sessions()
        self.events.emit(
            "auth.password.changed",
            scope,
            user_id=user_id,
            reason=f"{ended} other session(s) ended",
        )
        return row

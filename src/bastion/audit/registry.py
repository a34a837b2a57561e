"""The catalogue of checks: what each one is, what it maps to, how to fix what it finds.

A check is an async function registered with :func:`check`; it receives an
:class:`~bastion.audit.context.CheckContext` and returns the reason it passed (or raises
one of :mod:`bastion.audit.verdicts`). Its ``max_requests`` and ``max_seconds`` bound it:
the engine stops it at either and reports ``inconclusive``; the sum of ``max_requests``
is what the audit announces before it starts.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bastion.security import BastionError

if TYPE_CHECKING:
    from bastion.audit.context import CheckContext

__all__ = ["REGISTRY", "Check", "CheckFunction", "SelectionError", "check", "select"]

CheckFunction = Callable[["CheckContext"], Awaitable[str]]
_ID = re.compile(r"^[a-z][a-z-]*\.[a-z][a-z-]*$")


@dataclass(frozen=True, slots=True)
class Check:
    """One check of the catalogue. ``owasp`` is an OWASP API Security Top 10 (2023) id,
    ``asvs`` an OWASP ASVS 5.0 requirement, ``guide`` the guide's recommendation that
    it verifies, ``fix`` what to change when it fails. ``locks_accounts`` says that it
    locks the audit's own test accounts out (announced before the audit starts)."""

    id: str
    title: str
    owasp: str
    asvs: str
    guide: str
    fix: str
    run: CheckFunction
    max_requests: int
    max_seconds: float = 20.0
    locks_accounts: bool = False

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise ValueError(f"check id {self.id!r} is not 'family.name'")
        if not re.match(r"^API(10|[1-9]):2023$", self.owasp):
            raise ValueError(f"{self.id}: owasp {self.owasp!r} is not 'APIn:2023'")
        if not re.match(r"^V\d+(\.\d+){2}$", self.asvs):
            raise ValueError(f"{self.id}: asvs {self.asvs!r} is not 'Vn.n.n'")
        if self.max_requests < 1 or self.max_seconds <= 0:
            raise ValueError(f"{self.id}: a check needs a positive budget")


REGISTRY: dict[str, Check] = {}


def check(
    id: str,
    *,
    title: str,
    owasp: str,
    asvs: str,
    guide: str,
    fix: str,
    max_requests: int,
    max_seconds: float = 20.0,
    locks_accounts: bool = False,
) -> Callable[[CheckFunction], CheckFunction]:
    """Register the decorated function as check ``id`` (in the order of registration)."""

    def register(run: CheckFunction) -> CheckFunction:
        if id in REGISTRY:
            raise ValueError(f"check {id!r} is registered twice")
        REGISTRY[id] = Check(
            id=id,
            title=title,
            owasp=owasp,
            asvs=asvs,
            guide=guide,
            fix=fix,
            run=run,
            max_requests=max_requests,
            max_seconds=max_seconds,
            locks_accounts=locks_accounts,
        )
        return run

    return register


class SelectionError(BastionError, ValueError):
    """``--only`` or ``--skip`` names a check that does not exist."""


def select(only: list[str] | None, skip: list[str] | None) -> list[Check]:
    """The checks to run, in catalogue order. An id may end in ``.*`` (a family).
    Raises :class:`SelectionError` naming an id that matches nothing."""
    from bastion.audit.checks import ORDER  # importing it registers the catalogue

    rank = {check_id: i for i, check_id in enumerate(ORDER)}

    def matches(pattern: str) -> list[str]:
        if pattern.endswith(".*"):
            found = [i for i in REGISTRY if i.startswith(pattern[:-1])]
        else:
            found = [pattern] if pattern in REGISTRY else []
        if not found:
            raise SelectionError(f"no check is named {pattern!r}; known: {', '.join(REGISTRY)}")
        return found

    chosen = sorted(REGISTRY, key=lambda i: rank.get(i, len(rank)))
    if only:
        wanted = {i for p in only for i in matches(p)}
        chosen = [i for i in chosen if i in wanted]
    if skip:
        unwanted = {i for p in skip for i in matches(p)}
        chosen = [i for i in chosen if i not in unwanted]
    return [REGISTRY[i] for i in chosen]

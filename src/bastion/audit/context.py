"""What a check works with: the profile, fresh browsers, accounts, verdict helpers."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from bastion.audit.client import Browser, Budget
from bastion.audit.evidence import Evidence
from bastion.audit.openapi import OpenAPI
from bastion.audit.profile import PLACEHOLDER, Operation, Profile
from bastion.audit.target import AddressPool, Target, TransportFactory
from bastion.audit.verdicts import Failed, Inconclusive, NotApplicable

__all__ = ["AuditState", "CheckContext", "TestAccount", "json_at"]

T = TypeVar("T")
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@dataclass(slots=True)
class TestAccount:
    """An account the audit uses: one it registered, or one of the profile's."""

    email: str
    password: str
    registered: bool


@dataclass(slots=True)
class AuditState:
    """What every check of one audit shares: the address pool, the fixtures read
    from the target, the accounts registered so far, the secrets to mask."""

    profile: Profile
    target: Target
    transport: TransportFactory
    pool: AddressPool
    fixtures: dict[str, Any] = field(default_factory=dict)
    accounts: list[TestAccount] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    openapi: OpenAPI | None = None
    refresh_cookie: str | None = None  # detected, when the profile names none
    _next_profile_account: int = 0


def json_at(document: Any, pointer: str) -> Any:
    """The value at a JSON pointer (RFC 6901), or None where there is none."""
    value = document
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def fill(value: Any, variables: dict[str, Any]) -> Any:
    """``value`` with its ``{placeholders}`` replaced; a string that is one whole
    placeholder becomes the variable itself (so a number stays a number)."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) in variables:
            return variables[whole.group(1)]
        return PLACEHOLDER.sub(lambda m: str(variables.get(m.group(1), m.group(0))), value)
    if isinstance(value, dict):
        return {k: fill(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, variables) for v in value]
    return value


class CheckContext:
    """Handed to each check. Browsers it opens are closed when the check ends."""

    def __init__(self, state: AuditState, budget: Budget) -> None:
        self.state = state
        self.profile = state.profile
        self.budget = budget
        self.evidence = Evidence(state.secrets)
        self._browsers: list[Browser] = []

    # -- verdict helpers -------------------------------------------------------------

    def expect(self, condition: bool, reason: str) -> None:
        """The defence holds, or the check fails with ``reason``."""
        if not condition:
            raise Failed(reason)

    def control(self, condition: bool, reason: str) -> None:
        """The check's control worked, or the check is inconclusive with ``reason``."""
        if not condition:
            raise Inconclusive(f"control failed: {reason}")

    def present(self, value: T | None, reason: str) -> T:
        """``value``, which the check's control needs; inconclusive when it is None."""
        if value is None:
            raise Inconclusive(f"control failed: {reason}")
        return value

    def require(self, name: str) -> None:
        """Not applicable when the profile says the target has no ``name``."""
        if not self.profile.has(name):
            raise NotApplicable(f"the profile says the target has no {name}")

    def not_limited(self, response: httpx.Response, what: str) -> None:
        """A 429 here is the target limiting the auditor, not the defence under test."""
        if response.status_code == 429:
            raise Inconclusive(f"{what}: the target's rate limit refused the auditor", limited=True)

    def note(self, line: str) -> None:
        self.evidence.add(line)

    # -- clients -----------------------------------------------------------------------

    def browser(self, label: str = "client") -> Browser:
        """A fresh client: a source address of its own, no cookies."""
        address = self.state.pool.take()
        http = httpx.AsyncClient(
            transport=self.state.transport(address),
            base_url=self.state.target.url,
            timeout=TIMEOUT,
            follow_redirects=False,
        )
        name = f"{label}@{address}" if address else label
        browser = Browser(
            http, address=address, budget=self.budget, evidence=self.evidence, label=name
        )
        self._browsers.append(browser)
        return browser

    async def aclose(self) -> None:
        for browser in self._browsers:
            await browser.aclose()
        self._browsers.clear()

    # -- operations --------------------------------------------------------------------

    def variables(self, account: TestAccount | None = None, **extra: Any) -> dict[str, Any]:
        values: dict[str, Any] = dict(self.state.fixtures)
        if account is not None:
            values.update(email=account.email, password=account.password)
        values.setdefault("name", "Audit User")
        values.update(extra)
        return values

    async def call(
        self,
        browser: Browser,
        operation: Operation,
        *,
        account: TestAccount | None = None,
        token: str | None = None,
        note: str = "",
        **extra: Any,
    ) -> httpx.Response:
        """Send a profile operation with its placeholders filled in."""
        variables = self.variables(account, **extra)
        path = fill(operation.path, variables)
        body = fill(operation.body, variables) if operation.body is not None else None
        return await browser.request(operation.method, path, json=body, token=token, note=note)

    def mask(self, value: str) -> None:
        self.evidence.mask(value)

    def new_password(self) -> str:
        password = f"Audit-{secrets.token_urlsafe(15)}"
        self.mask(password)
        return password

    async def new_account(self, browser: Browser | None = None) -> TestAccount:
        """A fresh account registered by the audit, or the next of the profile's test
        accounts when the target has no registration. Inconclusive when neither."""
        state = self.state
        if not self.profile.has("auth.register"):
            if not self.profile.accounts:
                raise Inconclusive("the target has no registration and the profile no accounts")
            given = self.profile.accounts[state._next_profile_account % len(self.profile.accounts)]
            state._next_profile_account += 1
            self.mask(given.password)
            return TestAccount(given.email, given.password, registered=False)
        account = TestAccount(
            f"audit-{secrets.token_hex(6)}@example.com", self.new_password(), registered=True
        )
        browser = browser or self.browser("registrar")
        response = await self.call(
            browser, self.profile.auth.registration, account=account, note="a fresh account"
        )
        self.not_limited(response, "registering a test account")
        self.control(
            response.status_code in (200, 201),
            f"registering a test account answered {response.status_code}",
        )
        state.accounts.append(account)
        return account

    def token_of(self, response: httpx.Response) -> str | None:
        """The access token in a login or refresh answer (``auth.token_pointer``)."""
        try:
            token = json_at(response.json(), self.profile.auth.token_pointer)
        except ValueError:
            return None
        if isinstance(token, str) and token:
            self.mask(token)
            return token
        return None

    def refresh_cookie_name(self, browser: Browser) -> str | None:
        """The refresh cookie's name if ``browser`` holds one: the profile's, or the
        first cookie whose name says ``refresh``."""
        name = self.profile.auth.refresh_cookie
        if name in browser.cookies:
            return name
        if name and "refresh_cookie" in self.profile.auth.model_fields_set:
            return None  # the profile named it: no guessing
        # The contract's name is not there: the cookie whose name says "refresh".
        found = next((n for n in browser.cookies if "refresh" in n.lower()), None)
        if found is not None and found != self.state.refresh_cookie:
            self.state.refresh_cookie = found
            self.note(f"the refresh cookie is {found!r}, not {name!r}")
        return found

    async def login(
        self, browser: Browser, account: TestAccount, *, note: str = ""
    ) -> tuple[httpx.Response, str]:
        """Log ``account`` in from ``browser``: the answer and the access token. A
        login that does not succeed makes the check inconclusive (it is the control)."""
        response = await self.call(browser, self.profile.auth.login, account=account, note=note)
        self.not_limited(response, "logging a test account in")
        self.control(
            response.status_code == 200, f"the right password answered {response.status_code}"
        )
        token = self.present(
            self.token_of(response), f"no access token at {self.profile.auth.token_pointer}"
        )
        for value in browser.cookies.values():
            self.mask(value)
        return response, token

    async def signed_in(self, label: str = "user") -> tuple[Browser, TestAccount, str]:
        """A fresh browser with a fresh account logged in: browser, account, token."""
        browser = self.browser(label)
        account = await self.new_account(browser)
        _, token = await self.login(browser, account)
        return browser, account, token

    async def authorised_read(self, browser: Browser, token: str | None, note: str) -> int:
        """The status of the profile's ``me`` operation with ``token``."""
        response = await self.call(browser, self.profile.auth.me, token=token, note=note)
        self.not_limited(response, "an authenticated read")
        return response.status_code

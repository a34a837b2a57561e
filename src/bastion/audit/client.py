"""The auditor's HTTP client: one :class:`Browser` per simulated client.

A browser has a source address of its own (on loopback targets), its own cookies and
a share of the check's request budget. Cookies are kept by hand, not by httpx's jar:
the standard library's jar never returns a ``Secure`` cookie over plain HTTP, and the
checks must present old or foreign cookies on purpose (a used refresh token).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Any

import httpx

from bastion.audit.evidence import Evidence
from bastion.audit.verdicts import Inconclusive

__all__ = ["Browser", "Budget", "SetCookie", "parse_set_cookie"]


class Budget:
    """The requests and the time one check may spend; spending past either ends the
    check as inconclusive (a bound of the audit, never a verdict on the target)."""

    def __init__(self, requests: int, seconds: float) -> None:
        self.limit = requests
        self.used = 0
        self.deadline = time.monotonic() + seconds

    def spend(self) -> None:
        if self.used >= self.limit:
            raise Inconclusive(f"the check used its whole budget of {self.limit} requests")
        if time.monotonic() > self.deadline:
            raise Inconclusive("the check ran out of time")
        self.used += 1


class SetCookie:
    """One ``Set-Cookie`` header: name, value and attributes (names lower-cased)."""

    def __init__(self, raw: str) -> None:
        self.raw = raw
        first, *attributes = raw.split(";")
        name, _, value = first.partition("=")
        self.name = name.strip()
        self.value = value.strip()
        self.attributes: dict[str, str] = {}
        for attribute in attributes:
            key, _, val = attribute.partition("=")
            self.attributes[key.strip().lower()] = val.strip()

    @property
    def cleared(self) -> bool:
        max_age = self.attributes.get("max-age")
        return self.value == "" or (max_age is not None and max_age.strip() in ("0", "-1"))


def parse_set_cookie(response: httpx.Response) -> list[SetCookie]:
    return [SetCookie(raw) for raw in response.headers.get_list("set-cookie")]


def _cookie_header(cookies: Mapping[str, str]) -> str:
    jar: SimpleCookie = SimpleCookie()
    try:
        for name, value in cookies.items():
            jar[name] = value
    except CookieError:
        return "; ".join(f"{k}={v}" for k, v in cookies.items())
    return "; ".join(f"{k}={m.coded_value}" for k, m in jar.items())


class Browser:
    """A client of the target: its cookies, its address, every exchange in evidence.

    :meth:`request` never raises for an HTTP status. A transport failure (connection
    refused, timeout) ends the check as inconclusive: the target did not answer.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        address: str | None,
        budget: Budget,
        evidence: Evidence,
        label: str,
    ) -> None:
        self.http = http
        self.address = address
        self.budget = budget
        self.evidence = evidence
        self.label = label
        self.cookies: dict[str, str] = {}

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | AsyncIterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
        cookies: Mapping[str, str] | None = None,
        record: bool = True,
        note: str = "",
    ) -> httpx.Response:
        """Send one request. ``cookies`` replaces the browser's own for this request
        (``{}``: none); the answer's ``Set-Cookie`` updates the browser's."""
        self.budget.spend()
        sent: dict[str, str] = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        jar = self.cookies if cookies is None else cookies
        if jar:
            sent["Cookie"] = _cookie_header(jar)
        kwargs: dict[str, Any] = {"headers": sent}
        if content is not None:
            kwargs["content"] = content
        elif json is not None:
            kwargs["json"] = json
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            self.evidence.add(f"{self.label}: {method} {path} -> no answer in time")
            raise Inconclusive(f"{method} {path}: the target did not answer in time") from None
        except httpx.TransportError as exc:
            self.evidence.add(f"{self.label}: {method} {path} -> {type(exc).__name__}")
            raise Inconclusive(f"{method} {path}: the target could not be reached") from None
        for cookie in parse_set_cookie(response):
            if cookie.cleared:
                self.cookies.pop(cookie.name, None)
            else:
                self.cookies[cookie.name] = cookie.value
        if record:
            extra = f" ({note})" if note else ""
            self.evidence.add(f"{self.label}: {method} {path}{extra} -> {response.status_code}")
        return response

    async def aclose(self) -> None:
        await self.http.aclose()

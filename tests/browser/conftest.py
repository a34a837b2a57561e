"""Fixtures for the storefront in a real browser: Debian's Chromium driven by Playwright
(never a downloaded browser), against a real ``bastion serve``.

Without ``/usr/bin/chromium`` these tests fail under ``CI=true`` (``.ci/run`` installs
it) and are reported as skipped elsewhere, with the command that installs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from tests.browser.live_server import LiveServer, live_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTEFACTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"

# Reports every CSP violation the page meets to the test. Init scripts are not subject to
# the page's CSP, which is what lets this observer run at all.
OBSERVE_CSP = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__bastionCspViolation({
    directive: event.effectiveDirective,
    blocked: String(event.blockedURI),
    sample: String(event.sample || ""),
    source: String(event.sourceFile || ""),
  });
}, true);
"""


# Module scope, not session: while Playwright's sync API runs, its event loop counts as
# running in this thread, and the asyncio tests of other modules could not start.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does this)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("storefront")) as running:
        yield running


@dataclass
class Observed:
    """What the page did that a test may want to hold against it."""

    csp_violations: list[dict[str, Any]] = field(default_factory=list)
    csp_console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if "content security policy" in message.text.lower():
            self.csp_console.append(message.text)


@dataclass
class Shop:
    context: BrowserContext
    page: Page
    observed: Observed
    server: LiveServer


@pytest.fixture
def shop(browser: Browser, server: LiveServer) -> Iterator[Shop]:
    """A fresh browser profile (no cookies, no storage) on the storefront's origin."""
    context = browser.new_context(
        base_url=server.url, viewport={"width": 1280, "height": 900}, locale="en-US"
    )
    observed = Observed()
    context.expose_binding(
        "__bastionCspViolation", lambda _source, report: observed.csp_violations.append(report)
    )
    context.add_init_script(OBSERVE_CSP)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("console", observed.on_console)
    page.on("pageerror", lambda error: observed.page_errors.append(str(error)))
    try:
        yield Shop(context=context, page=page, observed=observed, server=server)
    finally:
        context.close()

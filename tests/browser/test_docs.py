"""The OpenAPI docs of development mode, in a real browser, under the contract's CSP.

FastAPI's stock page loads Swagger UI from a CDN and starts it with an inline script,
both of which the policy blocks: the page came up blank. These tests hold the page to
the policy it is served with and check that it really renders the API."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Request

from tests.browser.conftest import Shop
from tests.browser.test_storefront import screenshot


def assert_no_violation(shop: Shop) -> None:
    # Swagger UI sets styles through the CSSOM, which a CSP allows (and which shows up as
    # style attributes), so the storefront's no-inline-attribute check does not apply.
    assert shop.observed.csp_violations == []
    assert shop.observed.csp_console == []
    assert shop.observed.page_errors == []


def test_the_docs_render_every_operation_without_breaking_the_policy(shop: Shop) -> None:
    page = shop.page
    requested: list[str] = []

    def record(request: Request) -> None:
        requested.append(request.url)

    page.on("request", record)
    page.goto("/docs")
    page.locator(".opblock").first.wait_for()
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert len(paths) >= 20, paths
    for expected in ("/api/auth/login", "/api/orders/{order_id}", "/api/admin/users"):
        assert any(p.replace("\u200b", "") == expected for p in paths), (expected, paths)
    assert page.locator(".information-container .title").inner_text().startswith("Bastion")
    # Everything came from the service's own origin: nothing from a CDN.
    origin = urlsplit(shop.server.url).netloc
    assert requested
    foreign = [u for u in requested if urlsplit(u).netloc != origin and not u.startswith("data:")]
    assert foreign == []
    assert_no_violation(shop)
    screenshot(page, "docs.png")


def test_an_operation_opens_and_shows_its_problem_responses(shop: Shop) -> None:
    page = shop.page
    page.goto("/docs")
    page.locator(".opblock-summary-path", has_text="/api/orders/{order_id}").first.click()
    body = page.locator(".opblock.is-open").first
    body.locator(".responses-table").first.wait_for()
    codes = body.locator(".response-col_status").all_inner_texts()
    assert {"200", "401", "404"} <= {c.strip() for c in codes}, codes
    assert_no_violation(shop)

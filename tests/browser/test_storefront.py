"""The storefront in a real browser: the whole shopper journey, and what the page must
never do on the way (break its CSP, put a token where a script could steal it, render
API data as markup, lose the session on reload, keep it after logout)."""

from __future__ import annotations

import asyncio
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Response, expect

from bastion.db import open_database
from bastion.db.catalogue import upsert_product
from bastion.db.migrations import migrate
from bastion.seed import DEMO_PRODUCTS
from tests.browser.conftest import ARTEFACTS, Shop
from tests.browser.live_server import LiveServer, live_server

PASSWORD = "Tidy-Harbour-Lantern-58"
REFRESH_COOKIE = "__Secure-refreshToken"

STORAGE = """() => {
  const dump = (s) => Object.fromEntries(
    Array.from({ length: s.length }, (_, i) => [s.key(i), s.getItem(s.key(i))]));
  return { local: dump(localStorage), session: dump(sessionStorage), cookie: document.cookie };
}"""
INLINE_ATTRIBUTES = """() => [...document.querySelectorAll("*")].flatMap((node) =>
  [...node.attributes].filter((a) => a.name === "style" || a.name.startsWith("on"))
    .map((a) => `${node.tagName.toLowerCase()}[${a.name}]`))"""


def is_call(path: str, method: str = "POST") -> Any:
    return lambda r: r.url.split("?")[0].endswith(path) and r.request.method == method


def open_store(page: Page, *, signed_in: bool | None = None) -> None:
    page.goto("/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    if signed_in is not None:
        expect(page.locator("body")).to_have_attribute("data-session", "in" if signed_in else "out")


def register(page: Page, *, name: str, email: str, password: str = PASSWORD) -> Response:
    """Register through the form; the page then signs in. Returns the login response."""
    page.get_by_role("tab", name="Create account").click()
    form = page.locator("#register-form")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Email").fill(email)
    form.get_by_label("Password").fill(password)
    with page.expect_response(is_call("/api/auth/login")) as login:
        form.get_by_role("button", name="Create account").click()
    expect(page.locator("body")).to_have_attribute("data-session", "in")
    return login.value


def log_in(page: Page, *, email: str, password: str = PASSWORD) -> Response:
    page.get_by_role("tab", name="Sign in").click()
    form = page.locator("#login-form")
    form.get_by_label("Email").fill(email)
    form.get_by_label("Password").fill(password)
    with page.expect_response(is_call("/api/auth/login")) as login:
        form.get_by_role("button", name="Sign in").click()
    return login.value


def log_out(page: Page) -> Response:
    with page.expect_response(is_call("/api/auth/logout")) as logout:
        page.get_by_role("button", name="Log out").click()
    expect(page.locator("body")).to_have_attribute("data-session", "out")
    return logout.value


def add_to_basket(page: Page, product: str, quantity: int) -> None:
    card = page.locator(".product").filter(
        has=page.get_by_role("heading", name=product, exact=True)
    )
    card.get_by_label(f"Quantity of {product}").fill(str(quantity))
    card.get_by_role("button", name="Add to basket").click()


def fill_address(page: Page, *, postcode: str = "SW1A 1AA", promo: str = "") -> None:
    form = page.locator("#order-form")
    form.get_by_label("Address").fill("10 Downing Street")
    form.get_by_label("City").fill("London")
    form.get_by_label("Postcode").fill(postcode)
    form.get_by_label("Country").select_option("GB")
    form.get_by_label("Promo code").fill(promo)


def place_order(page: Page) -> Response:
    with page.expect_response(is_call("/api/orders")) as placed:
        page.locator("#order-form").get_by_role("button", name="Place order").click()
    return placed.value


def token_of(response: Response) -> str:
    assert response.status == 200, response.text()
    return str(response.json()["accessToken"])


def assert_no_token_reachable_by_scripts(page: Page, tokens: list[str]) -> None:
    """Web storage and document.cookie hold no token, and neither does the DOM."""
    seen = page.evaluate(STORAGE)
    reachable = json.dumps(seen) + page.content()
    assert tokens
    for token in tokens:
        assert token not in reachable
    assert "eyJ" not in json.dumps(seen)
    assert "refreshToken" not in seen["cookie"]
    assert "deviceToken" not in seen["cookie"]


def assert_page_kept_its_policy(shop: Shop) -> None:
    assert shop.observed.csp_violations == []
    assert shop.observed.csp_console == []
    assert shop.observed.page_errors == []
    assert shop.page.evaluate(INLINE_ATTRIBUTES) == []


def screenshot(page: Page, name: str) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / name
    # caret="initial": hiding the caret would leave style="" on every input, which the
    # inline-attribute check would then (rightly) count against the page.
    page.screenshot(path=str(path), full_page=True, caret="initial")
    assert path.stat().st_size > 10_000
    return path


def test_a_shopper_registers_orders_with_a_promo_code_reloads_and_logs_out(shop: Shop) -> None:
    page, server = shop.page, shop.server
    shop.context.clock.install()
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    open_store(page, signed_in=False)
    expect(page.locator(".product")).to_have_count(len(DEMO_PRODUCTS))

    tokens = [token_of(register(page, name="Ada Lovelace", email=email))]
    expect(page.locator("#who-name")).to_have_text("Ada Lovelace")
    assert_no_token_reachable_by_scripts(page, tokens)

    # The refresh cookie is HttpOnly, Secure (accepted on plain-HTTP loopback, a secure
    # context), SameSite=Strict and scoped to /api/auth.
    cookies = {c["name"]: c for c in shop.context.cookies()}
    refresh = cookies[REFRESH_COOKIE]
    assert refresh["httpOnly"] is True
    assert refresh["secure"] is True
    assert refresh["sameSite"] == "Strict"
    assert refresh["path"] == "/api/auth"

    log_out(page)
    tokens.append(token_of(log_in(page, email=email)))
    expect(page.locator("body")).to_have_attribute("data-session", "in")

    add_to_basket(page, "Mechanical keyboard", 2)
    add_to_basket(page, "USB-C hub", 1)
    expect(page.locator(".cart-line")).to_have_count(2)
    expect(page.locator("#cart-subtotal")).to_contain_text("$223.00")
    fill_address(page, promo="WELCOME10")
    placed = place_order(page)
    assert placed.status == 201, placed.text()
    order = placed.json()
    assert (order["subtotalCents"], order["discountCents"], order["totalCents"]) == (
        22300,
        2230,
        20070,
    )
    first = page.locator(".order").first
    expect(first).to_contain_text("Promo WELCOME10")
    expect(first).to_contain_text("$200.70")
    expect(first).to_contain_text("2 \u00d7 Mechanical keyboard")
    expect(page.locator(".cart-line")).to_have_count(0)
    assert_no_token_reachable_by_scripts(page, tokens)

    # A minute before the access token expires, the page renews it through the cookie.
    with page.expect_response(is_call("/api/auth/refresh")) as renewed:
        page.clock.fast_forward("14:05")
    tokens.append(token_of(renewed.value))
    assert httpx.get(
        f"{server.url}/api/users/me", headers={"Authorization": f"Bearer {tokens[-1]}"}
    ).json()["email"] == (email)

    # A reload keeps the shopper signed in: the page asks the cookie for a new token.
    with page.expect_response(is_call("/api/auth/refresh")) as reloaded:
        page.reload()
    tokens.append(token_of(reloaded.value))
    expect(page.locator("body")).to_have_attribute("data-session", "in")
    expect(page.locator("#who-name")).to_have_text("Ada Lovelace")
    expect(page.locator(".order")).to_have_count(1)
    assert_no_token_reachable_by_scripts(page, tokens)
    screenshot(page, "storefront-desktop.png")
    page.set_viewport_size({"width": 375, "height": 812})
    screenshot(page, "storefront-phone.png")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # nothing overflows
    page.set_viewport_size({"width": 1280, "height": 900})

    last_refresh = {c["name"]: c for c in shop.context.cookies()}[REFRESH_COOKIE]["value"]
    assert log_out(page).status == 204
    assert REFRESH_COOKIE not in {c["name"] for c in shop.context.cookies()}
    # The session is over on the server, not just forgotten by the page.
    me = httpx.get(f"{server.url}/api/users/me", headers={"Authorization": f"Bearer {tokens[-1]}"})
    assert me.status_code == 401
    again = httpx.post(
        f"{server.url}/api/auth/refresh", headers={"Cookie": f"{REFRESH_COOKIE}={last_refresh}"}
    )
    assert again.status_code == 401
    open_store(page, signed_in=False)
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#who-name")).to_have_text("")
    assert_no_token_reachable_by_scripts(page, tokens)
    assert_page_kept_its_policy(shop)


def test_problem_details_are_shown_next_to_the_fields_they_point_at(shop: Shop) -> None:
    page = shop.page
    open_store(page, signed_in=False)
    page.get_by_role("tab", name="Create account").click()
    form = page.locator("#register-form")
    form.get_by_label("Email").fill("not-an-email")
    form.get_by_label("Password").fill("short")
    form.get_by_role("button", name="Create account").click()
    expect(page.locator("#register-email-error")).to_have_text("Email must be an email address.")
    expect(page.locator("#register-name-error")).to_be_visible()
    expect(form.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
    expect(form.locator(".form-error")).to_have_text("Please check the highlighted fields.")

    email = f"grace-{uuid.uuid4().hex[:8]}@example.com"
    form.get_by_label("Name").fill("Grace Hopper")
    form.get_by_label("Email").fill(email)
    form.get_by_label("Password").fill("password1234")
    form.get_by_role("button", name="Create account").click()
    expect(page.locator("#register-password-error")).to_be_visible()
    expect(page.locator("#register-email-error")).to_be_hidden()
    expect(form.get_by_label("Password")).to_have_value("")

    register(page, name="Grace Hopper", email=email)
    log_out(page)
    assert log_in(page, email=email, password="Wrong-Password-123456").status == 401
    expect(page.locator("#login-form .form-error")).to_have_text("The email or password is wrong.")
    log_in(page, email=email)
    expect(page.locator("body")).to_have_attribute("data-session", "in")

    add_to_basket(page, "Laptop stand", 1)
    fill_address(page, postcode="!!")
    assert place_order(page).status == 400
    expect(page.locator("#ship-postcode-error")).to_contain_text("Postcode")
    expect(page.locator("#order-form").get_by_label("Postcode")).to_have_attribute(
        "aria-invalid", "true"
    )

    fill_address(page, promo="EXPIRED-2020")
    assert place_order(page).status == 400
    expect(page.locator("#ship-postcode-error")).to_be_hidden()
    expect(page.locator("#promo-code-error")).to_have_text(
        "Promo code is unknown, inactive or expired."
    )
    expect(page.locator(".cart-line")).to_have_count(1)
    screenshot(page, "storefront-problem-details.png")
    assert_page_kept_its_policy(shop)


HOSTILE_PRODUCT = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
HOSTILE_NAME = '<script>window.__xss=3</script><b onmouseover="window.__xss=4">Mallory</b>'


@pytest.fixture
def hostile_server(tmp_path: Path) -> Any:
    """A server whose catalogue holds a product named like an XSS payload."""

    async def seed() -> None:
        (tmp_path / "var").mkdir()
        db = open_database(f"sqlite:///{tmp_path / 'var' / 'bastion.sqlite3'}")
        try:
            await migrate(db)
            await upsert_product(
                db,
                product_id=str(uuid.uuid4()),
                name=HOSTILE_PRODUCT,
                price_cents=1234,
                currency="USD",
                now=datetime.now(UTC),
            )
        finally:
            await db.close()

    # Playwright's sync API keeps an event loop running in this thread: seed from another.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(seed())).result()
    with live_server(tmp_path) as running:
        yield running


def test_names_from_the_api_are_rendered_as_text_never_as_markup(
    shop: Shop, hostile_server: LiveServer
) -> None:
    page = shop.page
    page.goto(f"{hostile_server.url}/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    register(page, name=HOSTILE_NAME, email=f"mallory-{uuid.uuid4().hex[:8]}@example.com")
    expect(page.locator("#who-name")).to_have_text(HOSTILE_NAME)
    add_to_basket(page, HOSTILE_PRODUCT, 1)
    expect(page.locator(".cart-name")).to_have_text(HOSTILE_PRODUCT)
    fill_address(page)
    assert place_order(page).status == 201
    expect(page.locator(".order-lines")).to_contain_text(f"1 \u00d7 {HOSTILE_PRODUCT}")

    injected = page.evaluate(
        """() => ({
          xss: window.__xss,
          images: document.querySelectorAll("img").length,
          scripts: document.querySelectorAll("script:not([src])").length,
          bold: document.querySelectorAll("b").length,
        })"""
    )
    assert injected.get("xss") is None
    assert (injected["images"], injected["scripts"], injected["bold"]) == (0, 0, 0)
    assert_page_kept_its_policy(shop)


def test_the_csp_observer_catches_what_the_policy_blocks(shop: Shop) -> None:
    """The control for every 'no violation' above: a real violation is seen, and blocked."""
    page = shop.page
    open_store(page)
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.__ran = true";
          document.body.append(script);
          document.body.setAttribute("style", "background: red");
        }"""
    )
    for _ in range(50):  # the reports arrive asynchronously
        if len(shop.observed.csp_violations) >= 2:
            break
        page.wait_for_timeout(100)
    directives = {v["directive"] for v in shop.observed.csp_violations}
    assert directives == {"script-src-elem", "style-src-attr"}
    assert page.evaluate("window.__ran") is None
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != "rgb(255, 0, 0)"

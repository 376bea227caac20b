"""The buyer page in a real browser (Debian's headless Chromium) against the real stack.

What the audience of a talk sees on their phones: Buy Now, the order going
PENDING -> CONFIRMED, the stock falling, all told by the WebSocket.
"""
import json
import re
import uuid
from pathlib import Path

import httpx
import pytest

from flashsale.harness.checks import settle

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser, pytest.mark.broker_free,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                       "(apt-get install chromium); Playwright's own browser downloads are not used"),
    pytest.mark.timeout(240),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")
expect = sync_api.expect

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
WAIT_MS = 30_000  # generous: other stacks may share this machine's two cores


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=60_000)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser, wired):
    """open_page(**context options) -> a page on the gateway's `/`, its WebSocket frames and its errors."""
    contexts = []

    def open_(mock_websocket: bool = False, **options):
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.frames_in, page.sockets, page.errors = [], [], []

        def on_websocket(ws):
            page.sockets.append(ws.url)
            ws.on("framereceived", lambda payload: page.frames_in.append(json.loads(payload)))

        page.on("websocket", on_websocket)
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        if mock_websocket:  # a WebSocket that opens and then says nothing: the page must fall back to polling
            page.route_web_socket("**/ws*", lambda ws: None)
        page.goto(wired.gateway_url + "/")
        page.wait_for_function("window.flashsale && window.flashsale.stats.opens > 0")
        return page

    yield open_
    for context in contexts:
        context.close()


def test_buy_now_confirms_and_the_stock_falls_over_the_websocket(stack, wired, open_page):
    stack.reset(stock=10, per_user_limit=1)
    page = open_page(viewport={"width": 1280, "height": 800})
    expect(page.locator("#product-name")).to_have_text(wired.product_name)
    expect(page.locator("#stock")).to_have_text("10")
    expect(page.locator("#initial-stock")).to_have_text("10")

    page.click("#buy")

    order = page.locator("#orders li[data-status=CONFIRMED]")
    expect(order).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator("#stock")).to_have_text("9", timeout=WAIT_MS)
    order_id = order.get_attribute("data-order-id")
    user_id = page.input_value("#user-id")
    assert {"type": "order_update", "data": {"orderId": order_id, "status": "CONFIRMED", "reason": None,
                                             "userId": user_id}} in page.frames_in, page.frames_in
    stock = [f["data"]["availableStock"] for f in page.frames_in if f["type"] == "stock_update"]
    assert stock and stock[-1] == 9, page.frames_in
    stats = page.evaluate("window.flashsale.stats")
    assert stats["order_update"] >= 1 and stats["stock_update"] >= 1, stats
    assert httpx.get(f"{wired.gateway_url}/api/orders/{order_id}", timeout=10).json()["status"] == "CONFIRMED"
    assert not page.errors
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "buyer-page.png", full_page=True)


def test_a_phone_sees_the_buy_button_without_scrolling_sideways(stack, open_page):
    stack.reset(stock=10, per_user_limit=1)  # a sale on: the screenshot shows Buy Now, not another test's Sold out
    page = open_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)

    expect(page.locator("#buy")).to_be_in_viewport(ratio=1)
    box = page.locator("#buy").bounding_box()
    assert box["height"] >= 48 and box["width"] >= 300, box  # a thumb-sized target
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"horizontal scroll: content {widths[0]} px wide in a {widths[1]} px screen"
    assert not page.errors
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "buyer-page-phone.png")


def test_the_buyer_id_is_kept_and_can_be_changed(stack, wired, open_page):
    stack.reset(stock=10, per_user_limit=1)
    page = open_page()
    first = page.input_value("#user-id")
    assert re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", first), first
    page.reload()
    expect(page.locator("#user-id")).to_have_value(first)  # kept in localStorage

    name = f"alice-{uuid.uuid4().hex[:6]}"
    page.fill("#user-id", name)
    page.press("#user-id", "Enter")
    page.wait_for_function(f"window.flashsale.ws && window.flashsale.ws.url.endsWith('userId={name}') "
                           "&& window.flashsale.ws.readyState === WebSocket.OPEN")
    page.click("#buy")

    order = page.locator("#orders li[data-status=CONFIRMED]")
    expect(order).to_have_count(1, timeout=WAIT_MS)
    stored = httpx.get(f"{wired.gateway_url}/api/orders/{order.get_attribute('data-order-id')}", timeout=10).json()
    assert stored["userId"] == name
    assert any(url.endswith(f"/ws?userId={name}") for url in page.sockets), page.sockets


def test_without_websocket_news_the_page_asks_for_its_order(stack, open_page):
    stack.reset(stock=10, per_user_limit=1)
    page = open_page(mock_websocket=True)

    page.click("#buy")

    order = page.locator("#orders li[data-status=CONFIRMED]")
    expect(order).to_have_count(1, timeout=WAIT_MS)
    assert order.get_attribute("data-source") == "poll"
    assert page.evaluate("window.flashsale.stats.polls") >= 1


def test_sold_out_is_said_plainly(stack, wired, open_page):
    stack.reset(stock=1, per_user_limit=1)
    page = open_page(mock_websocket=True)  # the page has not heard that someone else took the last one
    expect(page.locator("#stock")).to_have_text("1")
    taken = httpx.post(f"{wired.gateway_url}/api/orders", timeout=10,
                       json={"userId": "the-fast-one", "productId": wired.product_id, "quantity": 1})
    assert taken.status_code == 202
    assert settle(wired, [taken.json()["orderId"]], timeout=30) is not None

    page.click("#buy")

    expect(page.locator("#message")).to_contain_text("409 SOLD_OUT")
    expect(page.locator("#stock")).to_have_text("0")
    expect(page.locator("#buy")).to_be_disabled()
    expect(page.locator("#buy")).to_have_text("Sold out")


@pytest.mark.parametrize("status, code, says", [(429, "RATE_LIMITED", "Wait 1 s"),
                                                (503, "BROKER_UNAVAILABLE", "cannot take orders right now")])
def test_busy_answers_are_said_plainly(stack, open_page, status, code, says):
    stack.reset(stock=10, per_user_limit=1)
    page = open_page()
    page.route("**/api/orders", lambda route: route.fulfill(
        status=status, headers={"Retry-After": "1"}, content_type="application/json",
        body=json.dumps({"error": {"code": code, "message": "..."}})))

    page.click("#buy")

    expect(page.locator("#message")).to_contain_text(f"{status} {code}")
    expect(page.locator("#message")).to_contain_text(says)
    expect(page.locator("#buy")).to_be_enabled()  # try again is allowed
    expect(page.locator("#orders li[data-status]")).to_have_count(0)

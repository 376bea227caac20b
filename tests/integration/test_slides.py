"""The talk's deck: `flashsale slides` builds one self-contained HTML file that a browser shows offline.

The build runs the deck notebook and nbconvert, as a speaker would; Debian's headless Chromium then
opens the file with every network request refused, counts the slides, and renders the title slide and
the live-demo slide (screenshots in test-artifacts/). Built for a gateway that is not there, the live slide
says "not connected" and the deck goes on; built for the session's real stack, it follows the sale as
orders arrive: stock falling, orders confirmed, the first buyers.
"""
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from flashsale import slides

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
URL = "http://10.20.30.40:8123/"  # what `flashsale up --public` would print on the speaker's laptop


def build(output: Path, url: str) -> Path:
    run = subprocess.run([sys.executable, "-m", "flashsale.cli", "slides", "--output", str(output), "--url", url],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    print(run.stdout.strip().splitlines()[-1])
    return output / "flashsale.html"


@pytest.fixture(scope="module")
def deck(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("deck"), URL)


@pytest.fixture(scope="module")
def live_deck(stack, tmp_path_factory) -> Path:
    """The deck as the speaker builds it for the stack that runs: the QR code and the live slide name its gateway."""
    return build(tmp_path_factory.mktemp("live-deck"), stack.wired().gateway_url + "/")


def go_to_the_demo(page):
    page.evaluate("const s = document.getElementById('flashsale-demo').closest('section');"
                  "const i = Reveal.getIndices(s); Reveal.slide(i.h, i.v)")


def test_the_deck_is_one_file_with_nothing_to_fetch(deck: Path):
    html = deck.read_text()
    assert slides.count_slides(html) >= 12
    assert not re.search(r"<script[^>]*\ssrc=", html), "every script is inline"
    assert not re.findall(r"<link[^>]*href=\"(?!data:)", html), "every style sheet is inline"
    assert "Reveal.initialize" in html and "reveal.js 5." in html
    assert "Measured 20" in html, "the numbers say when they were measured"


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
@pytest.mark.timeout(240)
def test_chromium_shows_the_title_and_the_live_demo_offline(deck: Path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.set_default_timeout(30_000)
            fetched, errors = [], []
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:"))
                       else (fetched.append(route.request.url), route.abort()))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(deck.as_uri())
            page.wait_for_function("window.Reveal && Reveal.isReady()")
            page.evaluate("Reveal.configure({transition: 'none'})")
            assert page.evaluate("Reveal.getTotalSlides()") >= 12
            assert fetched == [] and errors == []

            title = page.locator("section.present").last
            sync_api.expect(title.locator("h1")).to_contain_text("1,000 buyers")
            page.screenshot(path=str(ARTIFACTS / "slides-title.png"))

            go_to_the_demo(page)
            demo = page.locator("#flashsale-demo")
            sync_api.expect(demo).to_be_visible()
            sync_api.expect(demo).to_contain_text(URL)
            box = demo.locator("svg").bounding_box()
            assert box and box["width"] > 200 and box["height"] > 200, "a QR code big enough to scan from a seat"

            # No gateway at that address: after a failed try and a second one, the slide still says so, quietly,
            # shows no figures, and the deck goes on.
            sync_api.expect(demo).to_have_attribute("data-attempts", re.compile(r"^[2-9]|\d\d"))
            sync_api.expect(demo.locator("[data-live=status]")).to_have_text("not connected")
            sync_api.expect(demo.locator("[data-live=panel]")).to_be_hidden()
            page.screenshot(path=str(ARTIFACTS / "slides-demo.png"))
            here = page.evaluate("Reveal.getIndices()")
            page.keyboard.press("ArrowRight")
            assert page.evaluate("Reveal.getIndices()") != here, "the deck goes on past the demo"
            page.keyboard.press("ArrowLeft")
            assert page.evaluate("Reveal.getIndices()") == here
            assert fetched == [] and errors == []
        finally:
            browser.close()


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
@pytest.mark.timeout(300)
def test_the_buy_slide_follows_the_sale_live(stack, live_deck: Path):
    """Opened from file://, the slide reads the gateway's stock (GET, CORS) and its WebSocket as orders arrive."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")
    expect = sync_api.expect
    gateway = stack.wired().gateway_url
    stack.reset(stock=20, per_user_limit=1)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.set_default_timeout(30_000)
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(live_deck.as_uri())
            page.wait_for_function("window.Reveal && Reveal.isReady()")
            page.evaluate("Reveal.configure({transition: 'none'})")
            go_to_the_demo(page)
            demo = page.locator("#flashsale-demo")
            live = {name: demo.locator(f"[data-live={name}]") for name in ("status", "stock", "initial",
                                                                             "confirmed", "buyers")}
            expect(live["status"]).to_contain_text("live from 127.0.0.1")
            expect(live["stock"]).to_have_text("20")  # before any order: the GET, read across origins
            expect(live["initial"]).to_have_text(" of 20")
            expect(live["confirmed"]).to_have_text("0")

            def buy(user: str) -> None:
                answer = httpx.post(f"{gateway}/api/orders", timeout=10,
                                    json={"userId": user, "productId": stack.settings.product_id, "quantity": 1})
                assert answer.status_code == 202, answer.text

            buy("alice")  # first, alone: a name somebody typed, not to be put on the projector
            expect(live["stock"]).to_have_text("19")
            expect(live["confirmed"]).to_have_text("1")
            expect(live["buyers"]).to_have_text("al\u2026")
            for n in range(1, 6):
                buy(f"buyer-c0ffe{n}")  # names the buyer page makes up: shown as they are
            expect(live["stock"]).to_have_text("14")
            expect(live["confirmed"]).to_have_text("6")
            expect(live["buyers"]).to_have_text(re.compile(r"^al\u2026(, buyer-c0ffe[1-5]){4}$"))
            width = demo.locator("[data-live=bar]").evaluate("bar => bar.style.width")
            assert float(width.rstrip("%")) == 70, f"the bar shows {width} left, not 14 of 20"
            page.screenshot(path=str(ARTIFACTS / "slides-live.png"))

            stack.reset(stock=10, per_user_limit=1)  # a new sale: the slide starts counting again
            buy("buyer-c0ffe6")
            expect(live["stock"]).to_have_text("9")
            expect(live["initial"]).to_have_text(" of 10")
            expect(live["confirmed"]).to_have_text("1")
            expect(live["buyers"]).to_have_text("buyer-c0ffe6")
            assert errors == []
        finally:
            browser.close()

    # What made the GET readable from file:// is on that GET only: an admin route names no origin.
    product = httpx.get(f"{gateway}/api/products/{stack.settings.product_id}", headers={"Origin": "null"})
    assert product.headers.get("access-control-allow-origin") == "*"
    admin = httpx.post(f"{gateway}/api/admin/reset", headers={"Origin": "null"})
    assert admin.status_code == 401 and "access-control-allow-origin" not in admin.headers

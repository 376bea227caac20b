"""The talk's deck: `flashsale slides` builds one self-contained HTML file that a browser shows offline.

The build runs the deck notebook and nbconvert, as a speaker would; Debian's headless Chromium then
opens the file with every network request refused, counts the slides, and renders the title slide and
the live-demo slide (screenshots in test-artifacts/).
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flashsale import slides

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
URL = "http://10.20.30.40:8123/"  # what `flashsale up --public` would print on the speaker's laptop


@pytest.fixture(scope="module")
def deck(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("deck")
    run = subprocess.run([sys.executable, "-m", "flashsale.cli", "slides", "--output", str(output), "--url", URL],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    print(run.stdout.strip().splitlines()[-1])
    return output / "flashsale.html"


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

            page.evaluate("const s = document.getElementById('flashsale-demo').closest('section');"
                          "const i = Reveal.getIndices(s); Reveal.slide(i.h, i.v)")
            demo = page.locator("#flashsale-demo")
            sync_api.expect(demo).to_be_visible()
            sync_api.expect(demo).to_contain_text(URL)
            box = demo.locator("svg").bounding_box()
            assert box and box["width"] > 200 and box["height"] > 200, "a QR code big enough to scan from a seat"
            page.screenshot(path=str(ARTIFACTS / "slides-demo.png"))
        finally:
            browser.close()

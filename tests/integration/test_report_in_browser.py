"""The demo's report in a real browser (Debian's headless Chromium): the table and its reading come first, the
charts follow without a blank half-page, and a screenshot is kept as test-artifacts/report.png to look at."""
import io
from pathlib import Path

import pytest
from rich.console import Console

from flashsale.demo import run_demo

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
pytestmark = [pytest.mark.browser, pytest.mark.broker_free, pytest.mark.timeout(600),
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")]
sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")


def test_the_report_opens_with_its_table_and_reading_and_has_no_blank_half_page(stack, tmp_path):
    report = tmp_path / "report.html"
    assert run_demo(stack, buyers=300, stock=30, report=report, console=Console(file=io.StringIO()))

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.goto(report.as_uri())
            page.wait_for_selector(".js-plotly-plot .main-svg")
            table, reading = page.locator("table").bounding_box(), page.locator("p.reading").bounding_box()
            assert table["y"] < 200 and reading["y"] < 900, (table, reading)  # both on the first screen
            plot = page.locator(".js-plotly-plot").bounding_box()
            height = page.evaluate("document.documentElement.scrollHeight")
            assert height - (plot["y"] + plot["height"]) < 150, (height, plot)  # nothing blank below the charts
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=ARTIFACTS / "report.png", full_page=True)
        finally:
            browser.close()

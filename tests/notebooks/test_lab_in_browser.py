"""The lab in a real browser: JupyterLab in headless Chromium runs notebook 03, and the live dashboard draws.

The test starts its own JupyterLab (fixed token, free port) on a copy of the notebooks (JupyterLab
autosaves, and the committed notebooks must stay without outputs), opens 03, runs Run -> Run All
Cells from the menu, waits until the notebook's teardown has stopped its stack, and then asks the
page's plotly node whether the dashboard's stock trace (available stock over time) holds points and
its topology labels each consumer's lag. Screenshots to look at: test-artifacts/lab-notebook-03.png (the
page) and test-artifacts/dashboard.png (the dashboard: topology, panels, summaries, buttons).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from lab_processes import clean_up, ledger, survivors

from flashsale.lab.panels import LATENCIES

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
NOTEBOOK = "03-event-driven.ipynb"
SCREENSHOT = ROOT / "test-artifacts" / "lab-notebook-03.png"
DASHBOARD = ROOT / "test-artifacts" / "dashboard.png"
TOKEN = "flashsale-browser-test"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]
# Render every cell (no windowing, so the dashboard stays in the DOM) and ask nothing about news.
SETTINGS = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
            "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                               "checkForUpdates": False}}

# Each plotly node on the page, with the number of x values of each of its traces.
PLOTS = "() => [...document.querySelectorAll('.js-plotly-plot')].map(p => (p.data || []).map(t => (t.x || []).length))"
# The points of the dashboard's stock trace (-1 if no plot has one), and its topology's node labels.
STOCK = ("() => Math.max(-1, ...[...document.querySelectorAll('.js-plotly-plot')].flatMap(p => (p.data || [])"
         ".filter(t => t.name === 'stock').map(t => (t.x || []).length)))")
NODES = ("() => [...document.querySelectorAll('.js-plotly-plot')].flatMap(p => (p.data || [])"
         ".filter(t => t.name === 'topology').map(t => t.text))")
# The names of the dashboard's latency histograms: each says where its clock starts and stops.
CLOCKS = ("() => [...document.querySelectorAll('.js-plotly-plot')].slice(0, 1).flatMap(p => (p.data || [])"
          ".filter(t => t.type === 'histogram').map(t => t.name))")

pytestmark = [pytest.mark.browser, pytest.mark.broker_free, pytest.mark.timeout(900),
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")]


def wait_for(check, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError, ValueError, IndexError):
            pass
        time.sleep(every)
    raise TimeoutError(f"{what}: not after {timeout:.0f} s")


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab of our own; yields (url, the notebook's stack home)."""
    from flashsale.stack.processes import free_port

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy(path, notebooks)
    for name, values in SETTINGS.items():
        target = tmp_path / "settings" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    port = free_port()
    env = {**os.environ, "FLASHSALE_HOME": str(tmp_path / "home"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    with open(tmp_path / "jupyterlab.log", "wb") as log:  # the server writes to its own copy of the file
        server = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--allow-root", "--no-browser",
                                   "--ServerApp.open_browser=False", "--ServerApp.ip=127.0.0.1",
                                   f"--ServerApp.port={port}", f"--IdentityProvider.token={TOKEN}",
                                   f"--ServerApp.root_dir={notebooks}"],
                                  stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url, home = f"http://127.0.0.1:{port}", tmp_path / "home" / Path(NOTEBOOK).stem
    try:
        wait_for(lambda: httpx.get(f"{url}/api/status", params={"token": TOKEN}).status_code == 200, 120,
                 "JupyterLab did not start")
        yield url, home
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server shuts its kernels down
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        clean_up(home)


def torn_down(home: Path) -> bool:
    """The notebook's last cell ran: its stack had started, and now its process table is empty."""
    state = json.loads((home / "stack.json").read_text())
    return bool(ledger(home)) and state["processes"] == {}


def test_notebook_03_runs_in_jupyterlab_and_the_dashboard_draws(jupyterlab):
    from playwright.sync_api import sync_playwright

    url, home = jupyterlab
    SCREENSHOT.parent.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        errors = []
        page.on("console", lambda message: message.type == "error" and errors.append(message.text[:500]))
        try:
            page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={TOKEN}", timeout=120_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            wait_for(lambda: any(k["execution_state"] == "idle" for k in
                                 httpx.get(f"{url}/api/kernels", params={"token": TOKEN}).json()),
                     120, "no idle kernel")
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

            wait_for(lambda: torn_down(home), 600, "notebook 03 did not reach its teardown", every=2)
            try:  # the dashboard's stock trace: the available stock over time
                wait_for(lambda: page.evaluate(STOCK) > 0, 60, "no points", every=1)
            except TimeoutError:
                pytest.fail(f"the dashboard's plot holds no points: traces' lengths per plot {page.evaluate(PLOTS)}; "
                            f"console errors {errors}")
            labels = page.evaluate(NODES)
            assert labels and any("lag" in text for text in labels[0]), labels  # the topology names each lag
            assert page.evaluate(CLOCKS) == list(LATENCIES.values())  # accept: click → 202; pipeline: ...
            assert survivors(home) == []
        finally:
            page.screenshot(path=str(SCREENSHOT))
            plot = page.locator(".js-plotly-plot").first  # the dashboard's, the notebook's first plot
            if plot.count():  # a window as tall as the dashboard: JupyterLab scrolls inside, a screenshot cannot
                page.set_viewport_size({"width": 1400, "height": 2400})
                dashboard = page.locator(".jp-OutputArea-output", has=plot).first
                dashboard = dashboard if dashboard.count() else plot
                dashboard.scroll_into_view_if_needed()
                page.wait_for_timeout(1000)
                dashboard.screenshot(path=str(DASHBOARD))
            browser.close()

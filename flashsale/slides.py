"""`flashsale slides`: the talk's deck, a reveal.js slideshow built from `slides/flashsale.ipynb`.

The build runs the deck notebook (its few code cells draw the figures below), then converts it with
nbconvert and a template that inlines reveal.js (`flashsale/deck/`): one HTML file, no CDN, so it opens
in a room without Wi-Fi. The numbers are a real run's (four checkouts, three scenarios), kept in
`slides/demo-run.json`; `--measure` races this machine's stack first and records new ones. Present it from
that file, or live from JupyterLab with RISE (`jupyterlab-rise`: open the notebook, press Alt-R).
"""
import json
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.display import HTML, SVG

from flashsale import live
from flashsale.lab import palette
from flashsale.settings import Settings

if TYPE_CHECKING:
    from flashsale.stack.control import Stack

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "slides" / "flashsale.ipynb"
RUN = ROOT / "slides" / "demo-run.json"
DECK = Path(__file__).resolve().parent / "deck"
SYSTEMS = ("naive", "locked", "reserve-then-pay", "event-driven")  # as `flashsale demo` names them
SCENARIOS = ("normal", "payment-outage", "db-stall")


def build(output: Path, notebook: Path = NOTEBOOK, url: str | None = None, run: Path = RUN) -> Path:
    """Write `<output>/flashsale.html`, the self-contained deck, and return its path."""
    import nbformat
    from nbconvert import SlidesExporter
    from nbconvert.preprocessors import ExecutePreprocessor

    if not notebook.exists() or not run.exists():
        raise FileNotFoundError(f"{notebook} and {run} make the deck; they come with the repository (pip install -e .)")
    nb = nbformat.read(notebook, as_version=4)
    url = url or live.buyer_url(Settings().gateway_port)
    with _environment(FLASHSALE_SLIDES_URL=url, FLASHSALE_SLIDES_RUN=str(run.resolve())):
        ExecutePreprocessor(timeout=120, kernel_name="python3").preprocess(
            nb, {"metadata": {"path": str(notebook.parent)}})
    exporter = SlidesExporter(template_name="flashsale", extra_template_basedirs=[str(DECK)], exclude_input=True,
                              exclude_input_prompt=True, exclude_output_prompt=True, reveal_url_prefix="data:text/css,",
                              reveal_width="1280", reveal_height="720", reveal_transition="fade")
    files = ("reveal.js", "reveal.css", "notes.js", "live.js", "deck.css")
    assets = {name.replace(".", "_"): (DECK / name).read_text() for name in files}
    assets["theme_css"] = (DECK / "white.css").read_text()
    html, _ = exporter.from_notebook_node(nb, resources={"deck": assets})
    output.mkdir(parents=True, exist_ok=True)
    (output / "flashsale.html").write_text(html)
    return output / "flashsale.html"


def count_slides(html: str) -> int:
    """Slides as reveal.js counts them: every <section> with no <section> inside."""
    from html.parser import HTMLParser

    class Sections(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.open: list[bool] = []
            self.leaves = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "section":
                if self.open:
                    self.open[-1] = False  # it has a section inside: not a leaf
                self.open.append(True)

        def handle_endtag(self, tag: str) -> None:
            if tag == "section" and self.open:
                self.leaves += self.open.pop()

    parser = Sections()
    parser.feed(html)
    return parser.leaves


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """The deck's kernel inherits these: where the numbers are, which URL the QR code names."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.update({name: value})


def measure(stack: "Stack", buyers: int = 1000, stock: int = 100, path: Path = RUN) -> dict[str, Any]:
    """Race the four checkouts in every scenario, as `flashsale demo --scenario` does; record it for the deck."""
    from flashsale import demo

    stack.up()
    scenarios = {}
    for scenario in SCENARIOS:
        outcomes = {system: demo.race(stack, system, buyers, stock, scenario) for system in SYSTEMS}
        scenarios[scenario] = demo.figures(outcomes, buyers, stock, scenario)
    record = {"measured": datetime.now(UTC).isoformat(timespec="seconds"),
              "command": "flashsale slides --measure (the races of `flashsale demo --scenario S`, each scenario)",
              "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, embedded stack",
              "buyers": buyers, "stock": stock, "paymentDelayMs": stack.settings.payment_delay_ms,
              "scenarios": scenarios}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record


# --- what the deck's code cells show ------------------------------------------------------------------

def recorded() -> dict:
    return json.loads(Path(os.environ.get("FLASHSALE_SLIDES_RUN", RUN)).read_text())


def numbers(scenario: str = "normal") -> HTML:
    """The four checkouts in one scenario as a table, with when, where and how it was measured."""
    run = recorded()
    figures, rows = run["scenarios"][scenario], []
    for name in SYSTEMS:
        s = figures["systems"][name]
        settled = "never" if s["settledS"] is None else f"{s['settledS']:.1f}"
        wrong = "bad" if s["oversold"] else "good"
        rows.append(f"<tr><td>{name}</td><td class='{wrong}'>{s['sold']:,}</td><td class='{wrong}'>{s['oversold']:,}"
                    f"</td><td>{s['paid']:,}</td><td>{s['acceptedPerS']:,}</td><td>{s['p50Ms']:,}</td>"
                    f"<td>{s['p99Ms']:,}</td><td>{sum(s['errors'].values()):,}</td><td>{settled}</td>"
                    f"<td class='{'good' if s['soldByTheEnd'] == run['stock'] else 'bad'}'>{s['soldByTheEnd']:,}</td>"
                    "</tr>")
    return HTML(f"<table class='numbers'><tr><th>checkout</th><th>sold</th><th>oversold</th><th>paid</th>"
                f"<th>accepted/s</th><th>p50 ms</th><th>p99 ms</th><th>failed</th><th>all settled, s</th>"
                f"<th>sold by the end</th></tr>{''.join(rows)}</table>"
                f"<p class='caption'>{run['buyers']:,} buyers, {run['stock']} phones, a {run['paymentDelayMs']} ms "
                f"payment; {escape(scenario)}: {escape(figures['what'])}. Measured {run['measured'][:10]} on "
                f"{escape(run['machine'])} by <code>{escape(run['command'])}</code>.</p>")


def sold_chart() -> SVG:
    """Phones sold by each checkout in the normal race, against the phones there were."""
    run = recorded()
    sold = [run["scenarios"]["normal"]["systems"][name]["sold"] for name in SYSTEMS]
    top, width = max(sold + [run["stock"]]), 700
    bars = []
    for i, (name, n) in enumerate(zip(SYSTEMS, sold, strict=True)):
        y, w = 20 + i * 72, max(4, n / top * width)
        color = palette.color(name)  # each system's colour, as on every chart of the kit
        bars.append(f'<text x="250" y="{y + 36}" text-anchor="end" font-size="24">{name}</text>'
                    f'<rect x="270" y="{y}" width="{w:.0f}" height="50" fill="{color}"/>'
                    f'<text x="{280 + w:.0f}" y="{y + 36}" font-size="26" font-weight="bold">{n:,}</text>')
    x = 270 + run["stock"] / top * width
    return SVG(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1100 340" width="1100" height="340" '
               f'font-family="Helvetica, sans-serif">{"".join(bars)}'
               f'<line x1="{x:.0f}" y1="10" x2="{x:.0f}" y2="310" stroke="#333" stroke-width="3" '
               'stroke-dasharray="8 6"/>'
               f'<text x="{x + 8:.0f}" y="330" font-size="22">in stock: {run["stock"]}</text></svg>')


def flow() -> SVG:
    """The design: HTTP in, one log, three consumers, each with its own store; updates back by WebSocket."""
    return SVG((DECK / "flow.svg").read_text())


def demo_qr() -> HTML:
    """The buyer page's URL and its QR code: the audience buys from their phones.

    The deck's `live.js` fills in the panel from that same gateway's WebSocket as they buy: stock left,
    orders confirmed, the first buyers. With no gateway in reach the panel stays hidden: "not connected".
    """
    url = os.environ.get("FLASHSALE_SLIDES_URL") or live.buyer_url(Settings().gateway_port)
    return HTML(f"<div id='flashsale-demo' class='demo' data-gateway='{escape(url)}' "
                f"data-product='{escape(Settings().product_id)}'>{live.qr_svg(url, scale=12)}"
                f"<div><p>Scan, or open</p><p class='url'>{escape(url)}</p><p>and press <b>Buy Now</b>.</p>"
                "<div class='live' data-live='panel' hidden>"
                "<p><span class='stock' data-live='stock'></span><span data-live='initial'></span> left</p>"
                "<div class='bar'><div data-live='bar'></div></div>"
                "<p><b data-live='confirmed'>0</b> confirmed</p>"
                "<p class='buyers'>first: <span data-live='buyers'></span></p></div>"
                "<p class='status' data-live='status'>not connected</p></div></div>")

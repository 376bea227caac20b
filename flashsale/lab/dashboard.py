"""The live dashboard: the sale as it happens, in the notebook.

    dash = await lab.dashboard(stack)   # shows itself, then starts drawing
    race = await dash.race(1000)        # 1,000 buyers at the gateway; the dashboard draws as they go
    dash.stop()                         # the last picture stays

A thread (`watch.Watcher`) gathers the facts; a task on the kernel's own
asyncio loop redraws at most ten times a second, one batch per redraw. Neither
blocks a cell, but a cell that blocks the kernel pauses the drawing until it
returns: `await` whatever takes a while (`lab.background` runs it in a thread).

Why `await lab.dashboard(...)`: the browser must load plotly's widget (a 5 MB
module) within the 2 s anywidget allows a new widget, or the plot stays empty
for good. Measured in headless Chromium on two busy cores: it missed that when
the next cell started 1,000 buyers at once. So the kernel keeps quiet for a
moment after showing the dashboard, and only then starts watching and drawing.
"""
import asyncio
import html
import threading

import ipywidgets as widgets
import plotly.graph_objects as go
from IPython.display import display
from plotly.subplots import make_subplots

from flashsale.lab.control import background
from flashsale.lab.races import buyers
from flashsale.lab.watch import Watcher
from flashsale.stack.control import INFRA, SERVICES, Stack

REDRAW_S = 0.1  # at most ten redraws a second
QUIET_S = 3  # the kernel's quiet moment while the browser loads the plot (anywidget allows a new widget 2 s)
STATUSES = ("pending", "reserved", "confirmed", "cancelled")


class Dashboard:
    def __init__(self, stack: Stack):
        self.stack, self.watcher, self.fig = stack, Watcher(stack), go.FigureWidget(_figure())
        self.header, self.feed, self.note = widgets.HTML(), widgets.HTML(), widgets.HTML()
        self.lights = {name: widgets.HTML(layout=widgets.Layout(width="130px")) for name in (*SERVICES, *INFRA)}
        self.widget = widgets.VBox([self.header, self.fig, widgets.HBox([self.feed, self._buttons()])])
        self._drawn, self._message = -1, ""
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.watcher.start()
        self.task = asyncio.get_running_loop().create_task(self._redraw())

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def race(self, n: int = 1000, first: int = 0) -> asyncio.Future:
        """`n` buyers at the gateway in a worker thread; their accept latencies join the histogram."""
        future = background(buyers, self.stack, "gateway", n, first, progress=False)

        def note(f: asyncio.Future) -> None:
            if not f.cancelled() and not f.exception():
                self.watcher.add_accepts([b.latency_ms for b in f.result().buyers])

        future.add_done_callback(note)
        return future

    def stop(self) -> str:
        if self.task:
            self.task.cancel()
            self.watcher.stop()
        self._draw(self.watcher.snapshot())
        return "dashboard stopped"

    # --- Kill / Restart: the stack's own methods, in a thread, so the kernel stays free ----------------

    def _buttons(self) -> widgets.VBox:
        rows = []
        for name, light in self.lights.items():
            kill = widgets.Button(description="Kill", button_style="danger", layout=widgets.Layout(width="60px"))
            restart = widgets.Button(description="Restart", layout=widgets.Layout(width="80px"))
            kill.on_click(lambda _, n=name: self._act("killed", self.stack.kill, n))
            restart.on_click(lambda _, n=name: self._act("restarted", self.stack.restart, n))
            rows.append(widgets.HBox([light, kill, restart]))
        return widgets.VBox([*rows, self.note])

    def _act(self, done: str, action, name: str) -> None:
        def run():
            self._message = f"{name}: working…"
            try:
                action(name)
                self._message = f"{name}: {done}"
            except Exception as error:  # noqa: BLE001 - shown to the learner
                self._message = f"{name}: {type(error).__name__}: {error}"[:300]
        threading.Thread(target=run, daemon=True).start()

    # --- drawing --------------------------------------------------------------------------------------

    async def _redraw(self) -> None:
        while True:
            snap = self.watcher.snapshot()
            if snap["version"] != self._drawn or self.note.value != html.escape(self._message):
                try:
                    self._draw(snap)
                except Exception as error:  # noqa: BLE001 - keep the dashboard alive, say what broke
                    self._message = f"redraw failed: {error}"
            await asyncio.sleep(REDRAW_S)

    def _draw(self, snap: dict) -> None:
        seconds, stock = zip(*snap["stock"], strict=True) if snap["stock"] else ((), ())
        lag = snap["lag"]
        with self.fig.batch_update():
            self.fig.data[0].x, self.fig.data[0].y = seconds, stock
            self.fig.data[1].y = [snap["counts"].get(s, 0) for s in STATUSES]
            self.fig.data[2].x, self.fig.data[3].x = snap["accept_ms"], snap["e2e_ms"]
            self.fig.data[4].x = [f"{r['group']}<br>{r['topic'].split('.')[0]}/{r['partition']}" for r in lag]
            self.fig.data[4].y = [r["lag"] for r in lag]
            # Who holds each partition, as the broker says: over the bar on Apache Kafka; tansu does not know.
            owners = [r.get("owner") or "nobody" for r in lag]
            self.fig.data[4].hovertext = owners
            self.fig.data[4].text = owners if self.watcher.settings.consumer_groups else None
        self.header.value = _header(snap)
        self.feed.value = _feed(snap["feed"])
        for name, light in self.lights.items():
            up = snap["up"].get(name)
            light.value = f"<b style='color:{'seagreen' if up else 'crimson'}'>{'●' if up else '○'}</b> {name}"
        self.note.value = html.escape(self._message)
        self._drawn = snap["version"]


def _figure() -> go.Figure:
    fig = make_subplots(rows=2, cols=2, vertical_spacing=0.18, subplot_titles=(
        "available stock", "orders by status", "latency (ms): accept vs end-to-end",
        "consumer lag per partition (and its owner)"))
    fig.add_scatter(x=[], y=[], name="stock", mode="lines+markers", line_shape="hv", row=1, col=1)
    fig.add_bar(x=[s.upper() for s in STATUSES], y=[0] * len(STATUSES), name="orders", row=1, col=2,
                marker_color=["orange", "gold", "seagreen", "grey"])
    fig.add_histogram(x=[], name="accept", opacity=0.6, nbinsx=40, row=2, col=1)
    fig.add_histogram(x=[], name="end-to-end", opacity=0.6, nbinsx=40, row=2, col=1)
    fig.add_bar(x=[], y=[], name="lag", row=2, col=2, marker_color="slateblue", textposition="outside",
                cliponaxis=False, hovertemplate="%{x}<br>lag %{y}<br>owner: %{hovertext}<extra></extra>")
    fig.update_xaxes(title_text="seconds", row=1, col=1)
    fig.update_layout(height=560, barmode="overlay", template="plotly_white", margin=dict(l=40, r=20, t=40, b=40),
                      legend=dict(orientation="h", y=-0.12))
    return fig


def _header(snap: dict) -> str:
    c = snap["counts"]
    if not c:
        return "<b>waiting for the first numbers…</b>"
    errors = "".join(f"<br><span style='color:crimson'>{html.escape(k)}: {html.escape(v)}</span>"
                     for k, v in snap["errors"].items())
    return (f"<b>sale {c['saleId']}</b>: {c['availableStock']} of {c['initialStock']} left · "
            f"{c['confirmed']} confirmed · {c['cancelled']} cancelled · {c['pending']} pending · "
            f"{c.get('reserved', 0)} reserved, waiting for the payment{errors}")


def _feed(rows: list[tuple]) -> str:
    cells = "".join(f"<tr><td>{t}</td><td><code>{o}</code></td><td>{topic}</td><td>{p}</td><td>{off}</td></tr>"
                    for t, o, topic, p, off in rows)
    return ("<table style='font-size:12px;min-width:480px'><tr><th>type</th><th>order</th><th>topic</th>"
            f"<th>partition</th><th>offset</th></tr>{cells}</table>")


async def dashboard(stack: Stack) -> Dashboard:
    """Show a live dashboard of this stack below the cell and return it (`.stop()` it when done)."""
    dash = Dashboard(stack)
    display(dash.widget)
    await asyncio.sleep(QUIET_S)
    dash.start()
    return dash

"""The live dashboard: the sale as it happens, in the notebook.

    dash = await lab.dashboard(stack)   # shows itself, then starts drawing
    race = await dash.race(1000)        # 1,000 buyers at the gateway; the dashboard draws as they go
    dash.stop()                         # the last picture stays

One figure, one widget: the architecture on top (`topology`: events a second on each arrow, each consumer's
lag, a killed service grey and DOWN), then stock, orders by status, latency, CPU per order per component,
and the lag of each partition grouped by consumer group (`panels`); under it, one line of text per picture.
On three Kafka nodes the header also names each partition's leader and in-sync replicas (`replicas`).

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

from flashsale.lab import palette, panels, replicas, topology
from flashsale.lab.control import background
from flashsale.lab.races import buyers
from flashsale.lab.watch import Watcher
from flashsale.stack.control import INFRA, SERVICES, Stack

REDRAW_S = 0.1  # at most ten redraws a second
QUIET_S = 3  # the kernel's quiet moment while the browser loads the plot (anywidget allows a new widget 2 s)
STATUSES, LATENCIES = panels.STATUSES, panels.LATENCIES


class Dashboard:
    def __init__(self, stack: Stack):
        self.stack, self.watcher, self.fig = stack, Watcher(stack), go.FigureWidget(_figure())
        self.header, self.summary, self.feed, self.note = widgets.HTML(), widgets.HTML(), widgets.HTML(), widgets.HTML()
        self.lights = {name: widgets.HTML(layout=widgets.Layout(width="190px")) for name in (*SERVICES, *INFRA)}
        self.widget = widgets.VBox([self.header, self.fig, self.summary, widgets.HBox([self.feed, self._buttons()])])
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
        with self.fig.batch_update():
            paint(self.fig, snap)
        self.header.value = _header(snap)
        self.summary.value = _summary(snap)
        self.feed.value = _feed(snap["feed"])
        for name, light in self.lights.items():
            up = snap["up"].get(name)  # None: never started here (03 starts the services one by one)
            state = "up" if up else "idle" if up is None else "down"
            said = {"up": "", "idle": " (not started)", "down": " (down)"}[state]
            light.value = f"<b style='color:{palette.HEALTH[state]}'>{'●' if up else '○'}</b> {name}{said}"
        self.note.value = html.escape(self._message)
        self._drawn = snap["version"]


def paint(fig: go.Figure, snap: dict) -> None:
    """Put one watcher snapshot on the figure `_figure()` built."""
    seconds, stock = zip(*snap["stock"], strict=False) if snap["stock"] else ((), ())
    lag, cpu = panels.lag_bars(snap["lag"], snap["up"]), panels.cpu_bars(snap["cpu"])
    trace = {t.name: t for t in fig.data}
    topology.draw(fig, topology.picture(snap))
    trace["stock"].x, trace["stock"].y = seconds, stock
    trace["orders"].y = [snap["counts"].get(s, 0) for s in STATUSES]
    fig.layout.yaxis3.range = [0, max(1, *trace["orders"].y) * 1.15]  # never an empty -1..1 axis
    trace[LATENCIES["accept"]].x, trace[LATENCIES["pipeline"]].x = snap["accept_ms"], snap["pipeline_ms"]
    trace["cpu"].x, trace["cpu"].y = cpu["x"], cpu["y"]
    trace["lag"].x, trace["lag"].y, trace["lag"].marker.color = lag["x"], lag["y"], lag["colors"]
    trace["lag"].text, trace["lag"].hovertext = lag["text"], lag["hover"]
    fig.layout.yaxis6.range, fig.layout.yaxis6.dtick = lag["range"], lag["dtick"]
    fig.layout.xaxis5.visible = fig.layout.yaxis5.visible = bool(cpu["x"])  # no empty axes while nothing settled
    notes = {a.name: a for a in fig.layout.annotations if a.name in ("lag note", "owners", "cpu")}
    notes["lag note"].text, notes["owners"].text, notes["cpu"].text = lag["note"], lag["owners"], cpu["title"]


def _figure() -> go.Figure:
    """The topology on top, the sale's panels below it, the lag across the bottom: one figure, one widget."""
    fig = make_subplots(rows=4, cols=2, vertical_spacing=0.07, horizontal_spacing=0.1,
                        row_heights=[0.42, 0.18, 0.18, 0.22],
                        specs=[[{"colspan": 2}, None], [{}, {}], [{}, {}], [{"colspan": 2}, None]],
                        subplot_titles=("events a second on each arrow; lag (events waiting) under each consumer",
                                        "available stock, by seconds", "orders by status",
                                        "latency (ms), each from where its clock starts",
                                        " ", "consumer lag per partition, by group"))
    topology.add(fig, row=1, col=1)
    fig.add_scatter(x=[], y=[], name="stock", mode="lines+markers", line_shape="hv", row=2, col=1,
                    line_color=palette.SERIES["stock"], showlegend=False)
    fig.add_bar(x=[s.upper() for s in STATUSES], y=[0] * len(STATUSES), name="orders", row=2, col=2,
                marker_color=[palette.STATUSES[s] for s in STATUSES], marker_line=dict(width=1, color="black"),
                showlegend=False)
    for key, name in LATENCIES.items():
        fig.add_histogram(x=[], name=name, opacity=0.6, nbinsx=40, row=3, col=1, marker_color=palette.color(key))
    fig.add_bar(x=[], y=[], name="cpu", row=3, col=2, marker_color=palette.SERIES["service"], showlegend=False,
                texttemplate="%{y:.2f}", textposition="outside", cliponaxis=False)
    fig.add_bar(x=[[], []], y=[], name="lag", row=4, col=1, showlegend=False, textposition="outside",
                cliponaxis=False, hovertemplate="%{x}<br>lag %{y}<br>owner: %{hovertext}<extra></extra>")
    fig.add_annotation(text="", name="lag note", xref="x6 domain", yref="y6 domain", x=0.5, y=0.6,
                       showarrow=False, font=dict(size=18, color=palette.GREY))
    fig.add_annotation(text="", name="owners", xref="x6 domain", yref="y6 domain", x=1, y=1.02,
                       xanchor="right", yanchor="bottom", showarrow=False, font=dict(size=13, color=palette.GREY))
    cpu_title = next(a for a in fig.layout.annotations if a.text == " ")
    cpu_title.name = "cpu"
    fig.update_xaxes(tickfont=dict(size=13), tickangle=0, row=4, col=1)
    fig.update_xaxes(tickfont=dict(size=14), row=2, col=2)
    fig.update_yaxes(rangemode="tozero", row=3, col=2)
    # A fixed size: the widget's own guess of its width comes before JupyterLab has laid the cell out (measured:
    # 640 px of a 968 px output area), and squeezes the topology's labels into each other. 960 px fits
    # JupyterLab on a 1400 px screen with its file browser open.
    fig.update_layout(width=960, height=1400, barmode="overlay", **palette.LAYOUT)
    latency = fig.get_subplot(3, 1)  # its legend inside its top right corner
    fig.update_layout(legend=dict(x=latency.xaxis.domain[1], y=latency.yaxis.domain[1], xanchor="right",
                                  yanchor="top", bgcolor="rgba(255,255,255,0.8)"))
    return fig


def _summary(snap: dict) -> str:
    lines = [topology.summary(topology.picture(snap), snap["rates"]), *panels.summaries(snap).values()]
    return "<div role='status' style='font-size:15px'>" + "<br>".join(html.escape(line) for line in lines) + "</div>"


def _header(snap: dict) -> str:
    c = snap["counts"]
    if not c:
        return "<b style='font-size:18px'>waiting for the first numbers…</b>"
    cpu = f" · CPU {snap['cpu']['ms']['total']:.2f} ms per order" if snap.get("cpu") else ""
    replication = f"<br>replicas: {html.escape(replicas.line(snap['replicas']))}" if snap.get("replicas") else ""
    errors = "".join(f"<br><span style='color:{palette.HEALTH['down']}'>{html.escape(k)}: {html.escape(v)}</span>"
                     for k, v in snap["errors"].items())
    return (f"<div style='font-size:18px'><b>sale {c['saleId']}</b>: {c['availableStock']} of {c['initialStock']} "
            f"left · {c['confirmed']} confirmed · {c['cancelled']} cancelled · {c['pending']} pending · "
            f"{c.get('reserved', 0)} reserved, waiting for the payment{cpu}{replication}{errors}</div>")


def _feed(rows: list[tuple]) -> str:
    cells = "".join(f"<tr><td>{t}</td><td><code>{o}</code></td><td>{topic}</td><td>{p}</td><td>{off}</td></tr>"
                    for t, o, topic, p, off in rows)
    return ("<table style='font-size:14px;min-width:520px'><tr><th>type</th><th>order</th><th>topic</th>"
            f"<th>partition</th><th>offset</th></tr>{cells}</table>")


async def dashboard(stack: Stack) -> Dashboard:
    """Show a live dashboard of this stack below the cell and return it (`.stop()` it when done)."""
    dash = Dashboard(stack)
    display(dash.widget)
    await asyncio.sleep(QUIET_S)
    dash.start()
    return dash

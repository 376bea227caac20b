"""The few charts the notebooks draw, each from a race's raw numbers, each with its one line of text.

Every chart prints one sentence that says what it shows (for a screen reader, for a reader in a hurry, and for
nbval, which compares text), and keeps it in `fig.layout.meta["summary"]`. Colours come from `palette`.
"""
import plotly.graph_objects as go

from flashsale.harness.load import Race
from flashsale.lab import palette
from flashsale.lab.panels import LATENCIES

LAYOUT = dict(**palette.LAYOUT, height=380)
NAMES = {"gateway": "event-driven"}  # a race's system is the URL it raced; the palette knows the checkout


def said(fig: go.Figure, summary: str) -> go.Figure:
    """Print the chart's summary, keep it on the figure, and return the figure."""
    print(summary)
    fig.update_layout(meta={"summary": summary})
    return fig


def ms(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] if ordered else 0.0


def ecdf(values: list[float]) -> tuple[list[float], list[float]]:
    """The empirical distribution: x sorted, y the share of values at or below x (0-1]."""
    ordered = sorted(values)
    return ordered, [(i + 1) / len(ordered) for i in range(len(ordered))]


def sold_vs_stock(outcomes: dict, stock: int) -> go.Figure:
    """Phones sold by each checkout, against the phones there were; an oversold bar is hatched."""
    fig = go.Figure(go.Bar(x=list(outcomes), y=[o.sold for o in outcomes.values()],
                           marker_color=palette.colors(outcomes), marker_line=dict(width=2, color=palette.BLACK),
                           marker_pattern_shape=["x" if o.oversold else "" for o in outcomes.values()],
                           text=[o.sold for o in outcomes.values()], textposition="outside", cliponaxis=False))
    fig.add_hline(y=stock, line_dash="dash", annotation_text=f"in stock: {stock}")
    fig.update_layout(title="Phones sold vs phones in stock", yaxis_title="phones", **LAYOUT)
    return said(fig, "; ".join(f"{name} sold {o.sold} of {stock}" + (f", {o.oversold} oversold" if o.oversold else "")
                               for name, o in outcomes.items()))


def race_window(race: Race, n: int = 40) -> go.Figure:
    """The first `n` buyers' requests as bars in time: every bar that overlaps read the same stock."""
    first = sorted(race.buyers, key=lambda b: b.sent_at)[:n]
    accepted = [b.status in (201, 202) for b in first]
    color = palette.color(NAMES.get(race.system, race.system))
    fig = go.Figure(go.Bar(y=[b.user for b in first], x=[b.latency_ms for b in first],
                           base=[b.sent_at * 1000 for b in first], orientation="h",
                           marker_color=[color if ok else palette.GREY for ok in accepted]))
    fig.update_yaxes(autorange="reversed", showticklabels=False, title=f"first {n} buyers")
    fig.update_layout(title=f"{race.system}: each request from sent to answered",
                      xaxis_title="ms since the race started", **LAYOUT)
    overlap = min(b.sent_at * 1000 + b.latency_ms for b in first) - max(b.sent_at * 1000 for b in first) if first else 0
    return said(fig, f"{race.system}: of the first {len(first)} buyers {sum(accepted)} were accepted; "
                     + (f"all {len(first)} requests were open at once for {overlap:,.0f} ms" if overlap > 0 else
                        "their requests did not all overlap"))


def latencies(**series: Race | list[float]) -> go.Figure:
    """Overlaid histograms of ms, each a race (its answer latencies) or a list: latencies(accept=race, pipeline=[...]).

    `accept` and `pipeline` are named as the dashboard names them, with where each clock starts and stops."""
    values = {name.replace("_", " "): [b.latency_ms for b in v.buyers] if isinstance(v, Race) else list(v)
              for name, v in series.items()}
    colors = palette.colors(values)
    values = {LATENCIES.get(name, name): v for name, v in values.items()}
    fig = go.Figure([go.Histogram(x=v, name=name, opacity=0.6, nbinsx=50, marker_color=color)
                     for (name, v), color in zip(values.items(), colors, strict=False)])
    fig.update_layout(barmode="overlay", title="Latency", xaxis_title="ms", yaxis_title="orders", **LAYOUT)
    return said(fig, "; ".join(f"{name}: p50 {ms(v, 0.5):,.0f} ms, p99 {ms(v, 0.99):,.0f} ms ({len(v):,})"
                               for name, v in values.items()))


def _number(value) -> str:
    """1,234 for a number; anything else (a time, a label) as it is."""
    return f"{value:,}" if isinstance(value, int | float) else str(value)


def lines(rows: list[dict], x: str, *ys: str, title: str = "") -> go.Figure:
    """One line per column `ys` against `x`, from a list of row dicts."""
    fig = go.Figure([go.Scatter(x=[r[x] for r in rows], y=[r[y] for r in rows], name=y, mode="lines+markers",
                                line_color=color) for y, color in zip(ys, palette.colors(ys), strict=False)])
    fig.update_layout(title=title, xaxis_title=x, **LAYOUT)
    ends = f" as {x} goes {_number(rows[0][x])} → {_number(rows[-1][x])}" if rows else ""
    return said(fig, (f"{title}: " if title else "") + "; ".join(
        f"{y} {rows[0][y]:,.0f} → {rows[-1][y]:,.0f}" for y in ys if rows) + ends)

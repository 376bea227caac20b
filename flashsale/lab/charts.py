"""The few charts the notebooks draw, each from a race's raw numbers."""
import plotly.graph_objects as go

from flashsale.lab.load import Race

LAYOUT = dict(template="plotly_white", height=360, margin=dict(l=50, r=20, t=50, b=40))


def sold_vs_stock(outcomes: dict, stock: int) -> go.Figure:
    """Phones sold by each checkout, against the phones there were."""
    fig = go.Figure(go.Bar(x=list(outcomes), y=[o.sold for o in outcomes.values()],
                           marker_color=["crimson" if o.oversold else "seagreen" for o in outcomes.values()],
                           text=[o.sold for o in outcomes.values()], textposition="outside"))
    fig.add_hline(y=stock, line_dash="dash", annotation_text=f"in stock: {stock}")
    return fig.update_layout(title="Phones sold vs phones in stock", yaxis_title="phones", **LAYOUT)


def race_window(race: Race, n: int = 40) -> go.Figure:
    """The first `n` buyers' requests as bars in time: every bar that overlaps read the same stock."""
    first = sorted(race.buyers, key=lambda b: b.sent_at)[:n]
    fig = go.Figure(go.Bar(y=[b.user for b in first], x=[b.latency_ms for b in first],
                           base=[b.sent_at * 1000 for b in first], orientation="h",
                           marker_color=["seagreen" if b.status in (201, 202) else "grey" for b in first]))
    fig.update_yaxes(autorange="reversed", showticklabels=False, title=f"first {n} buyers")
    return fig.update_layout(title=f"{race.system}: each request from sent to answered",
                             xaxis_title="ms since the race started", **LAYOUT)


def latencies(**series: Race | list[float]) -> go.Figure:
    """Overlaid histograms of ms, each a race (its answer latencies) or a list: latencies(naive=race, e2e=[...])."""
    fig = go.Figure([go.Histogram(x=[b.latency_ms for b in values.buyers] if isinstance(values, Race) else values,
                                  name=name.replace("_", " "), opacity=0.6, nbinsx=50)
                     for name, values in series.items()])
    return fig.update_layout(barmode="overlay", title="Latency", xaxis_title="ms", yaxis_title="orders", **LAYOUT)


def lines(rows: list[dict], x: str, *ys: str, title: str = "") -> go.Figure:
    """One line per column `ys` against `x`, from a list of row dicts."""
    fig = go.Figure([go.Scatter(x=[r[x] for r in rows], y=[r[y] for r in rows], name=y, mode="lines+markers")
                     for y in ys])
    return fig.update_layout(title=title, xaxis_title=x, **LAYOUT)

"""The demo's HTML report: plotly charts in one self-contained file (works offline, in a classroom)."""
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots


def write_report(outcomes: dict, stock: int, path: Path) -> None:
    names = list(outcomes)
    fig = make_subplots(rows=2, cols=2, subplot_titles=(
        "Phones sold vs phones in stock", "Accepted orders per second",
        "Answer latency (ms), every buyer", "When each buyer was answered"))
    fig.add_bar(x=names, y=[o.sold for o in outcomes.values()], name="sold", row=1, col=1,
                marker_color=["crimson" if o.oversold else "seagreen" for o in outcomes.values()])
    fig.add_hline(y=stock, line_dash="dash", annotation_text=f"stock: {stock}", row=1, col=1)
    fig.add_bar(x=names, y=[o.race.accepted_per_s for o in outcomes.values()], name="accepted/s", row=1, col=2,
                showlegend=False)
    for name, o in outcomes.items():
        latencies = [b.latency_ms for b in o.race.buyers]
        fig.add_histogram(x=latencies, name=name, opacity=0.6, nbinsx=60, row=2, col=1)
        answered = sorted(b.sent_at * 1000 + b.latency_ms for b in o.race.buyers)
        fig.add_scatter(x=answered, y=list(range(1, len(answered) + 1)), name=f"{name} answered", mode="lines",
                        row=2, col=2)
    fig.update_layout(title=f"flashsale: {len(next(iter(outcomes.values())).race.buyers):,} buyers, {stock} phones",
                      barmode="overlay", height=800, template="plotly_white")
    fig.update_xaxes(title_text="ms since the race started", row=2, col=2)
    fig.update_yaxes(title_text="buyers answered", row=2, col=2)
    path.write_text(fig.to_html(full_html=True, include_plotlyjs=True))

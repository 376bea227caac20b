"""The demo's HTML report: plotly charts in one self-contained file (works offline, in a classroom).

Each system keeps one colour on every chart, so a reader follows it from panel to panel.
"""
from pathlib import Path

from plotly.subplots import make_subplots

COLORS = {"naive": "#c0392b", "locked": "#7d3c98", "reserve-then-pay": "#2874a6", "event-driven": "#1e8449"}


def write_report(outcomes: dict, stock: int, path: Path, scenario: str = "normal", about=None) -> None:
    """`outcomes`: system -> demo.Outcome; `about`: the demo.Scenario, whose fault window is shaded."""
    names, color = list(outcomes), [COLORS.get(name, "grey") for name in outcomes]
    fig = make_subplots(rows=2, cols=2, subplot_titles=(
        "Phones sold (left) and sold by the end: paid for and in stock (right)", "Accepted orders per second",
        "Answer latency (ms), every buyer", "When each buyer was answered"))
    fig.add_bar(x=names, y=[o.sold for o in outcomes.values()], name="sold", row=1, col=1, marker_color=color,
                showlegend=False, text=[o.sold for o in outcomes.values()], textposition="outside", width=0.4,
                offset=-0.4)
    fig.add_bar(x=names, y=[o.kept for o in outcomes.values()], name="sold by the end", row=1, col=1,
                marker_color=color, opacity=0.5, showlegend=False, width=0.4, offset=0,
                text=[o.kept for o in outcomes.values()], textposition="outside")
    fig.add_hline(y=stock, line_dash="dash", annotation_text=f"stock: {stock}", row=1, col=1)
    fig.add_bar(x=names, y=[o.race.accepted_per_s for o in outcomes.values()], name="accepted/s", row=1, col=2,
                marker_color=color, showlegend=False)
    for name, o in outcomes.items():
        latencies = [b.latency_ms for b in o.race.buyers]
        fig.add_histogram(x=latencies, name=name, legendgroup=name, marker_color=COLORS.get(name), opacity=0.6,
                          nbinsx=60, row=2, col=1)
        answered = sorted(b.sent_at * 1000 + b.latency_ms for b in o.race.buyers)
        fig.add_scatter(x=answered, y=list(range(1, len(answered) + 1)), name=name, legendgroup=name,
                        showlegend=False, mode="lines", line_color=COLORS.get(name), row=2, col=2)
    if about is not None and about.fault is not None:
        fig.add_vrect(x0=about.at_s * 1000, x1=(about.at_s + about.lasts_s) * 1000, fillcolor="orange", opacity=0.15,
                      line_width=0, annotation_text=scenario, row=2, col=2)
    buyers = len(next(iter(outcomes.values())).race.buyers)
    what = f": {about.what}" if about is not None else ""
    fig.update_layout(title=f"flashsale: {buyers:,} buyers, {stock} phones; scenario {scenario}{what}",
                      barmode="overlay", height=800, template="plotly_white")
    fig.update_xaxes(title_text="ms since the race started", row=2, col=2)
    fig.update_yaxes(title_text="buyers answered", row=2, col=2)
    path.write_text(fig.to_html(full_html=True, include_plotlyjs=True))

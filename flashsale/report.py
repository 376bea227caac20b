"""The demo's HTML report: the results table, three sentences that read it, then the charts, in one
self-contained file (plotly inlined: it works offline, in a classroom).

Each system keeps its one colour (`lab.palette`) on every chart and in the table, so a reader follows it from
panel to panel. Latency is one ECDF per system: the share of buyers answered within x ms, which four
overlapping histograms could not show.
"""
import html
from pathlib import Path
from typing import Any

from plotly.subplots import make_subplots

from flashsale.harness.races import Outcome, Scenario
from flashsale.lab import palette
from flashsale.lab.charts import ecdf

COLUMNS = ("system", "sold", "oversold", "paid", "charged twice", "accepted/s", "p50 ms", "p99 ms", "errors",
           "lost", "settled in s", "sold by the end")
STYLE = """body{font-family:system-ui,sans-serif;font-size:18px;margin:24px auto;max-width:1280px;color:#222}
table{border-collapse:collapse;margin:12px 0}th,td{padding:6px 12px;text-align:right;border-bottom:1px solid #ddd}
th:first-child,td:first-child{text-align:left}.swatch{display:inline-block;width:14px;height:14px;margin-right:8px}
h1{font-size:28px}.bad{color:#D55E00;font-weight:bold}p.reading{font-size:20px;line-height:1.45;max-width:70em}"""


def rows(outcomes: dict) -> list[dict]:
    """The table's rows, as `flashsale demo` prints them."""
    return [{"system": name, "sold": o.sold, "oversold": o.oversold, "paid": o.paid, "charged twice": o.charged_twice,
             "accepted/s": round(o.race.accepted_per_s), "p50 ms": round(o.race.latency_ms(0.5)),
             "p99 ms": round(o.race.latency_ms(0.99)), "errors": sum(o.race.errors().values()), "lost": o.lost,
             "settled in s": "never" if o.settled_s is None else f"{o.settled_s:.2f}", "sold by the end": o.kept}
            for name, o in outcomes.items()]


def reading(table: list[dict], stock: int) -> str:
    """Three sentences: who sold more than there was, who answered fastest and slowest, who kept every order."""
    over = [r for r in table if r["oversold"]]
    first = ("; ".join(f"{r['system']} sold {r['sold']} phones of {stock}, {r['oversold']} too many" for r in over)
             + (", and the others" if len(over) < len(table) else "") if over else "Every system")
    first += (" sold no more than it had." if not over else " sold no more than they had.") \
        if len(over) < len(table) else "."
    fast, slow = min(table, key=lambda r: r["p99 ms"]), max(table, key=lambda r: r["p99 ms"])
    second = (f"{fast['system']} answered 99 % of its buyers within {fast['p99 ms']:,} ms, {slow['system']} within "
              f"{slow['p99 ms']:,} ms.")
    clean = [r["system"] for r in table if not (r["oversold"] or r["lost"] or r["charged twice"] or r["errors"])]
    named = " and ".join([", ".join(clean[:-1]), clean[-1]] if len(clean) > 1 else clean)
    third = (f"{'Only ' if len(clean) < len(table) else ''}{named} got everything right: nothing oversold, no order "
             "lost, nobody charged twice, no buyer failed." if clean else
             "No system kept every order, every buyer and every charge right.")
    return " ".join(sentence[0].upper() + sentence[1:] for sentence in (first, second, third))


def _table(table: list[dict]) -> str:
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    body = ""
    for r in table:
        swatch = f"<span class='swatch' style='background:{palette.color(r['system'])}'></span>"
        cells = [swatch + html.escape(r["system"])]
        for c in COLUMNS[1:]:
            bad = c in ("oversold", "charged twice", "lost", "errors") and r[c]
            cells.append(f"<span class='bad'>{r[c]:,}</span>" if bad else
                         f"{r[c]:,}" if isinstance(r[c], int) else html.escape(str(r[c])))
        body += "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


def figure(outcomes: dict[str, Outcome], stock: int, scenario: str = "normal", about: Scenario | None = None) -> Any:
    names, colors = list(outcomes), [palette.color(name) for name in outcomes]
    fig = make_subplots(rows=2, cols=2, vertical_spacing=0.16, horizontal_spacing=0.09, subplot_titles=(
        f"Phones sold (solid), sold by the end (light); {stock} in stock (dashed)", "Accepted orders per second",
        "Answer latency: share of buyers answered within x ms", "When each buyer was answered"))
    for value, opacity, offset in (("sold", 1, -0.4), ("kept", 0.45, 0)):
        fig.add_bar(x=names, y=[getattr(o, value) for o in outcomes.values()], row=1, col=1, marker_color=colors,
                    opacity=opacity, width=0.4, offset=offset, showlegend=False, textposition="outside",
                    text=[getattr(o, value) for o in outcomes.values()], cliponaxis=False)
    fig.add_hline(y=stock, line_dash="dash", row=1, col=1)
    fig.add_bar(x=names, y=[o.race.accepted_per_s for o in outcomes.values()], row=1, col=2, marker_color=colors,
                showlegend=False, texttemplate="%{y:,.0f}", textposition="outside", cliponaxis=False)
    for name, o in outcomes.items():
        x, y = ecdf([b.latency_ms for b in o.race.buyers])
        fig.add_scatter(x=x, y=y, name=name, legendgroup=name, mode="lines", line=dict(color=palette.color(name),
                        width=3), row=2, col=1)
        answered = sorted(b.sent_at * 1000 + b.latency_ms for b in o.race.buyers)
        fig.add_scatter(x=answered, y=list(range(1, len(answered) + 1)), name=name, legendgroup=name,
                        showlegend=False, mode="lines", line=dict(color=palette.color(name), width=3), row=2, col=2)
    last_ms = max((b.sent_at * 1000 + b.latency_ms for o in outcomes.values() for b in o.race.buyers), default=0)
    if about is not None and about.fault is not None:  # drawn while buyers were answered, not for all of a long one
        fig.add_vrect(x0=about.at_s * 1000, x1=min((about.at_s + about.lasts_s) * 1000, last_ms),
                      fillcolor=palette.ORANGE, opacity=0.15, line_width=0, annotation_text=scenario, row=2, col=2)
    fig.update_annotations(font_size=18)  # the subplot titles
    every = [b.latency_ms for o in outcomes.values() for b in o.race.buyers if b.latency_ms > 0]
    wide = bool(every) and max(every) / min(every) > 20  # a log axis only where latencies span decades
    fig.update_xaxes(title_text="ms (log scale)" if wide else "ms", type="log" if wide else "linear", tickangle=0,
                     row=2, col=1)
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02], row=2, col=1)
    fig.update_xaxes(title_text="ms since the race started", row=2, col=2)
    fig.update_yaxes(title_text="buyers answered", row=2, col=2)
    fig.update_layout(height=820, barmode="overlay", **palette.LAYOUT,
                      legend=dict(orientation="h", x=0, y=-0.12, font=dict(size=16)))
    return fig


def summaries(outcomes: dict, table: list[dict], stock: int) -> list[str]:
    """One line per chart, in the order of the charts."""
    by = {r["system"]: r for r in table}
    last = {name: max((b.sent_at * 1000 + b.latency_ms for b in o.race.buyers), default=0)
            for name, o in outcomes.items()}
    return ["sold: " + ", ".join(f"{s} {r['sold']} (by the end {r['sold by the end']})" for s, r in by.items())
            + f", of {stock} in stock",
            "accepted a second: " + ", ".join(f"{s} {r['accepted/s']:,}" for s, r in by.items()),
            "latency p50 / p99: " + ", ".join(f"{s} {r['p50 ms']:,} / {r['p99 ms']:,} ms" for s, r in by.items()),
            "the last buyer answered after: " + ", ".join(f"{s} {ms:,.0f} ms" for s, ms in last.items())]


def write_report(outcomes: dict[str, Outcome], stock: int, path: Path, scenario: str = "normal",
                 about: Scenario | None = None) -> None:
    """`about`: the race's scenario, whose fault window is shaded."""
    table, buyers = rows(outcomes), len(next(iter(outcomes.values())).race.buyers)
    what = f": {html.escape(about.what)}" if about is not None else ""
    charts = figure(outcomes, stock, scenario, about).to_html(full_html=False, include_plotlyjs=True,
                                                              default_width="100%")
    lines = "".join(f"<li>{html.escape(line)}</li>" for line in summaries(outcomes, table, stock))
    path.write_text(f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>flashsale report</title>"
                    f"<style>{STYLE}</style></head><body><h1>flashsale: {buyers:,} buyers, {stock} phones; "
                    f"scenario {html.escape(scenario)}{what}</h1>{_table(table)}"
                    f"<p class='reading'>{html.escape(reading(table, stock))}</p>"
                    f"<ul class='summaries'>{lines}</ul>{charts}</body></html>")

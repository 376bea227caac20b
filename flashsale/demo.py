"""`flashsale demo`: the same 1,000 buyers race four checkouts; one table, an HTML report, and JSON.

The races themselves, and what each checkout does, are harness/races.py's.
"""
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flashsale.harness.races import SCENARIOS, SYSTEMS, Outcome, race
from flashsale.stack.control import Stack


def run_demo(stack: Stack, buyers: int = 1000, stock: int = 100, scenario: str = "normal",
             report: Path | None = None, as_json: Path | None = None, console: Console | None = None) -> bool:
    """Race all four; print the table; write the report and the JSON. True if the event-driven system held."""
    console = console or Console()
    console.print(f"[bold]{buyers:,} buyers, {stock} phones, scenario {scenario}[/bold] "
                  f"({SCENARIOS[scenario].what}): bringing the stack up...")
    stack.up()
    outcomes = {system: race(stack, system, buyers, stock, scenario) for system in SYSTEMS}
    console.print(table(outcomes, buyers, stock, scenario))
    if report:
        from flashsale.report import write_report

        write_report(outcomes, stock, report, scenario, SCENARIOS[scenario].on(stack.wired()))
        console.print(f"report: {report.resolve()}")
    if as_json:
        as_json.write_text(json.dumps(figures(outcomes, buyers, stock, scenario), indent=2) + "\n")
        console.print(f"figures: {as_json.resolve()}")
    events = outcomes["event-driven"]
    held = events.oversold == 0 and events.lost == 0 and events.charged_twice == 0 and events.settled_s is not None
    console.print("[green]the event-driven system sold exactly what it had, lost nothing and charged nobody "
                  "twice[/green]" if held else f"[red]the event-driven system failed: oversold {events.oversold}, "
                  f"lost {events.lost}, charged twice {events.charged_twice}[/red]")
    return held


def figures(outcomes: dict[str, Outcome], buyers: int, stock: int, scenario: str) -> dict[str, Any]:
    """The contract's JSON: {"scenario", "buyers", "stock", "systems": {name: {...}}}."""
    return {"scenario": scenario, "buyers": buyers, "stock": stock, "what": SCENARIOS[scenario].what,
            "systems": {name: {
                "sold": o.sold, "oversold": o.oversold, "paid": o.paid, "chargedTwice": o.charged_twice,
                "acceptedPerS": round(o.race.accepted_per_s), "p50Ms": round(o.race.latency_ms(0.5)),
                "p99Ms": round(o.race.latency_ms(0.99)), "errors": o.race.errors(), "lost": o.lost,
                "settledS": None if o.settled_s is None else round(o.settled_s, 2), "soldByTheEnd": o.kept,
                "expired": o.expired, "refunded": o.refunded,
                "answers": {str(status): n for status, n in o.race.statuses().items()}}
                for name, o in outcomes.items()}}


def table(outcomes: dict[str, Outcome], buyers: int, stock: int, scenario: str) -> Table:
    t = Table(title=f"{buyers:,} buyers, {stock} phones; {scenario}: {SCENARIOS[scenario].what}",
              caption="errors: answers 5xx / no answer in time / connection refused; sold by the end: paid for "
                      "and in stock (an oversold phone is refunded); expired: not paid within the payment deadline, "
                      "the unit back on sale; refunded: charged after its order expired, the money given back")
    t.add_column("system", no_wrap=True)
    for header in ("sold", "oversold", "paid", "charged\ntwice", "accepted/s", "p50 ms", "p99 ms", "errors",
                   "lost", "settled\nin s", "sold by\nthe end", "expired", "refunded"):
        t.add_column(header, justify="right")
    for name, o in outcomes.items():
        errors = o.race.errors()
        t.add_row(name, str(o.sold), f"[red]{o.oversold}[/]" if o.oversold else "0", str(o.paid),
                  f"[red]{o.charged_twice}[/]" if o.charged_twice else "0", f"{o.race.accepted_per_s:,.0f}",
                  f"{o.race.latency_ms(0.5):,.0f}", f"{o.race.latency_ms(0.99):,.0f}",
                  f"{errors['5xx']}/{errors['timeouts']}/{errors['refused']}", str(o.lost),
                  "never" if o.settled_s is None else f"{o.settled_s:.2f}", str(o.kept), str(o.expired),
                  str(o.refunded))
    return t

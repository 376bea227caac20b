"""`flashsale demo`: the three-way race, one table, one HTML report.

1,000 distinct buyers, 100 phones, three checkouts on the same machine and the
same PostgreSQL: the naive shop, the locked shop, and the event-driven system.
"""
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from flashsale.lab.checks import invariants, settle
from flashsale.lab.load import Race, run_buyers
from flashsale.stack.control import Stack


@dataclass
class Outcome:
    race: Race
    sold: int
    oversold: int
    settled_s: float | None  # until every accepted order was final (the shop settles as it answers)
    lost: int = 0


def race_shop(stack: Stack, checkout: str, buyers: int, stock: int) -> Outcome:
    settings = stack.wired()
    stack.reset(stock=stock)
    race = run_buyers(checkout, settings.shop_url, buyers, settings.product_id)
    sold = httpx.get(f"{settings.shop_url}/products/{settings.product_id}").json()["sold"]
    return Outcome(race, sold, max(0, sold - stock), race.wall_s)


def race_events(stack: Stack, buyers: int, stock: int) -> Outcome:
    settings = stack.wired()
    sale = stack.reset(stock=stock)
    race = run_buyers("gateway", settings.gateway_url, buyers, settings.product_id)
    accepted = [b.order_id for b in race.accepted]
    settled = settle(settings, accepted, timeout=120)
    state = invariants(settings, sale.saleId, accepted)
    return Outcome(race, state.confirmedUnits, state.oversold,
                   None if settled is None else race.wall_s + settled, state.lost)


def run_demo(stack: Stack, buyers: int = 1000, stock: int = 100, report: Path | None = None,
             console: Console | None = None) -> bool:
    """Race all three; print the table; write the report. True if the event-driven system held."""
    console = console or Console()
    console.print(f"[bold]{buyers:,} buyers, {stock} phones[/bold]: bringing the stack up...")
    stack.up()
    outcomes = {"naive shop": race_shop(stack, "naive", buyers, stock),
                "locked shop": race_shop(stack, "locked", buyers, stock),
                "event-driven": race_events(stack, buyers, stock)}
    console.print(table(outcomes, stock))
    if report:
        from flashsale.report import write_report

        write_report(outcomes, stock, report)
        console.print(f"report: {report.resolve()}")
    events = outcomes["event-driven"]
    held = events.oversold == 0 and events.lost == 0 and events.settled_s is not None
    console.print("[green]the event-driven system sold exactly what it had[/green]" if held else
                  f"[red]the event-driven system failed: oversold {events.oversold}, lost {events.lost}[/red]")
    return held


def table(outcomes: dict[str, Outcome], stock: int) -> Table:
    t = Table("system", "sold", "oversold", "accepted/s", "p50 accept ms", "p99 accept ms", "settled in s",
              "answers", title=f"{stock} phones")
    for name, o in outcomes.items():
        t.add_row(name, str(o.sold), f"[red]{o.oversold}[/]" if o.oversold else "0", f"{o.race.accepted_per_s:,.0f}",
                  f"{o.race.latency_ms(0.5):,.0f}", f"{o.race.latency_ms(0.99):,.0f}",
                  "never" if o.settled_s is None else f"{o.settled_s:.2f}",
                  " ".join(f"{s}x{n}" for s, n in o.race.statuses().items()))
    return t

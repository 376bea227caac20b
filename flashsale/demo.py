"""`flashsale demo`: the same 1,000 buyers race four checkouts; one table, an HTML report, and JSON.

naive             reads the stock, pays, writes it back: it oversells
locked            pays inside its row lock: correct, and every buyer queues behind each payment
reserve-then-pay  takes the unit and commits, pays outside any lock, gives the unit back if unpaid
event-driven      answers 202 at once; inventory, payments and orders decide a moment later (a saga)

All four pay through the same payment provider, on the same machine and the same PostgreSQL. A scenario
says what goes wrong in the middle of every race: nothing, the provider, or the database.
"""
import json
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from flashsale.adapters import psp
from flashsale.lab.checks import invariants, settle, shop_sale
from flashsale.lab.load import Race, run_buyers
from flashsale.stack.control import Stack

SYSTEMS = {"naive": "naive", "locked": "locked", "reserve-then-pay": "reserve-then-pay", "event-driven": "gateway"}


@dataclass(frozen=True)
class Scenario:
    what: str
    fault: Callable[[Stack], None] | None = None  # blocks while the fault lasts, then mends it
    at_s: float = 0.0  # seconds into each race
    lasts_s: float = 0.0


def payment_outage(stack: Stack, seconds: float = 5) -> None:
    settings = stack.wired()
    psp.behaviour(settings.psp_url, settings.admin_token, outageSeconds=seconds)
    time.sleep(seconds)


def db_stall(stack: Stack, seconds: float = 5) -> None:
    stack.pause("postgres", seconds)


# What happens in the middle of each race. Every race starts its 1,000 buyers at once and has answered them
# all within about 1-2 s (locked: ~6 s), so 0.3 s in is mid-race for every system.
SCENARIOS = {
    "normal": Scenario("nothing goes wrong"),
    "payment-outage": Scenario("the payment provider is down for 5 s, from 0.3 s into each race",
                               payment_outage, 0.3, 5),
    "db-stall": Scenario("PostgreSQL is frozen (SIGSTOP) for 5 s, from 0.3 s into each race", db_stall, 0.3, 5),
}


@contextmanager
def during(stack: Stack, scenario: Scenario):
    """The scenario's fault, `at_s` into what the block runs; the block ends once the fault is over too."""
    cause = scenario.fault
    if cause is None:
        yield
        return
    failures: list[Exception] = []

    def inject() -> None:
        try:
            cause(stack)
        except Exception as error:  # handed to the race's thread below, not lost in this one
            failures.append(error)

    fault = threading.Timer(scenario.at_s, inject)
    fault.start()
    try:
        yield
    finally:
        fault.join()
    if failures:
        raise failures[0]


@dataclass
class Outcome:
    race: Race
    sold: int
    oversold: int
    settled_s: float | None  # until every accepted order was final (the shop settles as it answers)
    lost: int = 0  # accepted, never final
    paid: int = 0  # successful charges
    charged_twice: int = 0  # orders with more than one successful charge
    kept: int = 0  # sold by the end: units sold, paid for and in stock (an oversold unit is refunded)


def race_shop(stack: Stack, checkout: str, buyers: int, stock: int, scenario: Scenario = SCENARIOS["normal"],
              progress: bool = True) -> Outcome:
    settings = stack.wired()
    sale = stack.reset(stock=stock)
    with during(stack, scenario):
        race = run_buyers(checkout, settings.shop_url, buyers, settings.product_id, progress=progress)
    shop = shop_sale(settings, sale.saleId, checkout)
    return Outcome(race, shop["sold"], max(0, shop["sold"] - stock), race.wall_s, shop["lost"], shop["paid"],
                   shop["chargedTwice"], min(shop["sold"], shop["paid"], stock))


def race_events(stack: Stack, buyers: int, stock: int, scenario: Scenario = SCENARIOS["normal"],
                progress: bool = True) -> Outcome:
    settings = stack.wired()
    sale = stack.reset(stock=stock)
    with during(stack, scenario):
        race = run_buyers("gateway", settings.gateway_url, buyers, settings.product_id, progress=progress)
        accepted = race.order_ids
        settled = settle(settings, accepted, timeout=120)
    state = invariants(settings, sale.saleId, accepted)
    return Outcome(race, state.confirmedUnits, state.oversold, None if settled is None else race.wall_s + settled,
                   state.lost, state.paid, state.chargedTwice, min(state.confirmedUnits, state.paid, stock))


def race(stack: Stack, system: str, buyers: int = 1000, stock: int = 100, scenario: str = "normal",
         progress: bool = True) -> Outcome:
    """One system of `SYSTEMS`, one race, a new sale of `stock`, with `scenario` in the middle of it."""
    if SYSTEMS[system] == "gateway":
        return race_events(stack, buyers, stock, SCENARIOS[scenario], progress)
    return race_shop(stack, SYSTEMS[system], buyers, stock, SCENARIOS[scenario], progress)


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

        write_report(outcomes, stock, report, scenario, SCENARIOS[scenario])
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


def figures(outcomes: dict[str, Outcome], buyers: int, stock: int, scenario: str) -> dict:
    """The contract's JSON: {"scenario", "buyers", "stock", "systems": {name: {...}}}."""
    return {"scenario": scenario, "buyers": buyers, "stock": stock, "what": SCENARIOS[scenario].what,
            "systems": {name: {
                "sold": o.sold, "oversold": o.oversold, "paid": o.paid, "chargedTwice": o.charged_twice,
                "acceptedPerS": round(o.race.accepted_per_s), "p50Ms": round(o.race.latency_ms(0.5)),
                "p99Ms": round(o.race.latency_ms(0.99)), "errors": o.race.errors(), "lost": o.lost,
                "settledS": None if o.settled_s is None else round(o.settled_s, 2), "soldByTheEnd": o.kept,
                "answers": {str(status): n for status, n in o.race.statuses().items()}}
                for name, o in outcomes.items()}}


def table(outcomes: dict[str, Outcome], buyers: int, stock: int, scenario: str) -> Table:
    t = Table(title=f"{buyers:,} buyers, {stock} phones; {scenario}: {SCENARIOS[scenario].what}",
              caption="errors: answers 5xx / no answer in time / connection refused; sold by the end: paid for "
                      "and in stock (an oversold phone is refunded)")
    t.add_column("system", no_wrap=True)
    for header in ("sold", "oversold", "paid", "charged\ntwice", "accepted/s", "p50 ms", "p99 ms", "errors",
                   "lost", "settled\nin s", "sold by\nthe end"):
        t.add_column(header, justify="right")
    for name, o in outcomes.items():
        errors = o.race.errors()
        t.add_row(name, str(o.sold), f"[red]{o.oversold}[/]" if o.oversold else "0", str(o.paid),
                  f"[red]{o.charged_twice}[/]" if o.charged_twice else "0", f"{o.race.accepted_per_s:,.0f}",
                  f"{o.race.latency_ms(0.5):,.0f}", f"{o.race.latency_ms(0.99):,.0f}",
                  f"{errors['5xx']}/{errors['timeouts']}/{errors['refused']}", str(o.lost),
                  "never" if o.settled_s is None else f"{o.settled_s:.2f}", str(o.kept))
    return t

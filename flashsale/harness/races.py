"""The races of `flashsale demo`: the same 1,000 buyers against each of four checkouts, with a fault mid-race.

naive             reads the stock, pays, writes it back: it oversells
locked            pays inside its row lock: correct, and every buyer queues behind each payment
reserve-then-pay  takes the unit and commits, pays outside any lock, gives the unit back if unpaid
event-driven      answers 202 at once; inventory, payments and orders decide a moment later (a saga)

All four pay through the same payment provider, on the same machine and the same PostgreSQL. A scenario
says what goes wrong in the middle of every race: nothing, the provider, or the database.
"""
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from flashsale.adapters import psp
from flashsale.harness.checks import invariants, payments_done, settle, shop_sale
from flashsale.harness.load import Race, run_buyers
from flashsale.settings import Settings
from flashsale.stack.control import Stack

SYSTEMS = {"naive": "naive", "locked": "locked", "reserve-then-pay": "reserve-then-pay", "event-driven": "gateway"}


@dataclass(frozen=True)
class Scenario:
    what: str
    fault: Callable[[Stack], None] | None = None  # blocks while the fault lasts, then mends it
    at_s: float = 0.0  # seconds into each race
    lasts_s: float = 0.0
    past_deadline: bool = False  # it lasts `lasts_s` longer than the stack's payment deadline

    def on(self, settings: Settings) -> "Scenario":
        """This scenario as it runs on a stack of these settings: how long it lasts, in seconds."""
        return replace(self, lasts_s=self.lasts_s + settings.payment_deadline_s, past_deadline=False) \
            if self.past_deadline else self


def payment_outage(stack: Stack) -> None:
    """The provider down for 25 s longer than the payment deadline: every order it holds expires, and every charge
    made once it is back is refunded. An order reserved later than the margin into the outage would still be paid in
    time: with 5 s, on a machine so busy that the race's reservations took 10 s, the demo showed no expiry, and with
    10 s a CI rehearsal on durable tansu at a load of 5-8 on 2 cores sold all 30 phones, none expired."""
    settings = stack.wired()
    seconds = SCENARIOS["payment-outage"].on(settings).lasts_s
    psp.behaviour(settings.psp_url, settings.admin_token, outageSeconds=seconds)
    time.sleep(seconds)


def db_stall(stack: Stack, seconds: float = 5) -> None:
    stack.pause("postgres", seconds)


# What happens in the middle of each race. Every race starts its 1,000 buyers at once and has answered them
# all within about 1-2 s (locked: ~6 s), so 0.3 s in is mid-race for every system.
SCENARIOS = {
    "normal": Scenario("nothing goes wrong"),
    "payment-outage": Scenario("the payment provider is down for 25 s longer than the payment deadline, from 0.3 s "
                               "into each race", payment_outage, 0.3, 25, past_deadline=True),
    "db-stall": Scenario("PostgreSQL is frozen (SIGSTOP) for 5 s, from 0.3 s into each race", db_stall, 0.3, 5),
}


@contextmanager
def during(stack: Stack, scenario: Scenario) -> Iterator[None]:
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
    expired: int = 0  # event-driven: orders cancelled PAYMENT_TIMEOUT, not paid within the payment deadline
    refunded: int = 0  # event-driven: charges that succeeded after their order expired, refunded


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
    payments_done(settings, timeout=120)  # charges held through an outage are made, then refunded, after it
    state = invariants(settings, sale.saleId, accepted)
    return Outcome(race, state.confirmedUnits, state.oversold, None if settled is None else race.wall_s + settled,
                   state.lost, state.paid, state.chargedTwice, min(state.confirmedUnits, state.paid, stock),
                   state.expired, state.refunded)


def race(stack: Stack, system: str, buyers: int = 1000, stock: int = 100, scenario: str = "normal",
         progress: bool = True) -> Outcome:
    """One system of `SYSTEMS`, one race, a new sale of `stock`, with `scenario` in the middle of it."""
    if SYSTEMS[system] == "gateway":
        return race_events(stack, buyers, stock, SCENARIOS[scenario], progress)
    return race_shop(stack, SYSTEMS[system], buyers, stock, SCENARIOS[scenario], progress)

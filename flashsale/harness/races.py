"""The races of `flashsale demo`: the same 1,000 buyers against each of four checkouts, with a fault in each race.

naive             reads the stock, pays, writes it back: it oversells
locked            pays inside its row lock: correct, and every buyer queues behind each payment
reserve-then-pay  takes the unit and commits, pays outside any lock, gives the unit back if unpaid
event-driven      answers 202 at once; inventory, payments and orders decide a moment later (a saga)

All four pay through the same payment provider, on the same machine and the same PostgreSQL. A scenario
says what goes wrong in every race: nothing, the provider, or the database.
"""
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
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
    fault: Callable[[Stack, float], AbstractContextManager[object]] | None = None  # begins on entry, mended on exit
    at_s: float = 0.0  # seconds into each race; 0: before its first buyer
    lasts_s: float = 0.0
    past_deadline: bool = False  # it lasts `lasts_s` longer than the stack's payment deadline
    until_answered: bool = False  # mended once a checkout that answers while the buyer waits has answered them all

    def on(self, settings: Settings) -> "Scenario":
        """This scenario as it runs on a stack of these settings: how long it lasts, in seconds."""
        return replace(self, lasts_s=self.lasts_s + settings.payment_deadline_s, past_deadline=False) \
            if self.past_deadline else self


@contextmanager
def payment_outage(stack: Stack, seconds: float) -> Iterator[None]:
    """The provider answers 503 for `seconds`, or until the block ends. It mends itself when the time is up, even if
    the demo dies first."""
    settings = stack.wired()
    psp.behaviour(settings.psp_url, settings.admin_token, outageSeconds=seconds)
    try:
        yield
    finally:
        psp.behaviour(settings.psp_url, settings.admin_token, outageSeconds=0)


def db_stall(stack: Stack, seconds: float) -> AbstractContextManager[list[int]]:
    return stack.frozen("postgres")


# What happens in each race. Every race starts its 1,000 buyers at once and has answered them all within about
# 1-2 s (locked: ~6 s), so 0.3 s in is mid-race for every system. The payment outage begins before the first
# buyer instead: begun 0.3 s in, it met no reservation on a quiet machine (CI's event-driven race had paid all 30
# phones by then, none expired) and most of them on a busy one. The event-driven system's orders wait for the
# provider, so its outage lasts past the deadline: every reservation expires, and each charge made once the
# provider is back is refunded. The checkouts that pay while the buyer waits have nothing left to wait for once
# every buyer is answered: their outage ends there, and the demo does not sit through 55 s of it three times.
SCENARIOS = {
    "normal": Scenario("nothing goes wrong"),
    "payment-outage": Scenario("the payment provider is down from the sale's opening: until every buyer is answered "
                               "for the checkouts that pay while the buyer waits, 25 s past the payment deadline for "
                               "the event-driven one, whose orders wait for it", payment_outage, 0, 25,
                               past_deadline=True, until_answered=True),
    "db-stall": Scenario("PostgreSQL is frozen (SIGSTOP) for 5 s, from 0.3 s into each race", db_stall, 0.3, 5),
}


@contextmanager
def during(stack: Stack, scenario: Scenario) -> Iterator[threading.Event]:
    """The scenario's fault, `at_s` into the block (at 0, begun before it); the block ends once the fault is over.
    Setting the event it yields mends the fault sooner."""
    fault, lasts_s = scenario.fault, scenario.on(stack.wired()).lasts_s
    mend, begun = threading.Event(), threading.Event()
    failures: list[Exception] = []
    if fault is None:
        yield mend
        return

    def inject() -> None:
        try:
            if not mend.wait(scenario.at_s):
                with fault(stack, lasts_s):
                    begun.set()
                    mend.wait(lasts_s)
        except Exception as error:  # handed to the race's thread below, not lost in this one
            failures.append(error)
        finally:
            begun.set()

    thread = threading.Thread(target=inject, name="fault", daemon=True)
    thread.start()
    if scenario.at_s == 0:
        begun.wait()
    try:
        yield mend
    except BaseException:
        mend.set()  # the race itself failed (or ^C): mend the fault now instead of waiting it out
        raise
    finally:
        thread.join()
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
    with during(stack, scenario) as mend:
        race = run_buyers(checkout, settings.shop_url, buyers, settings.product_id, progress=progress)
        if scenario.until_answered:
            mend.set()
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

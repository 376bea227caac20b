"""The fault suite: a stack of its own, the contract's invariants after every fault, and a tally.

The tally is printed at the end of the run (with or without `-s`): how many faults were injected,
how many orders they hit, and what that cost (lost, oversold, double reservations, sales not paid
exactly once).
FLASHSALE_FAULT_SEED picks the random moments and victims; the summary names it, to replay a run.
"""
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from flashsale.adapters import redis as redis_adapter
from flashsale.harness.checks import Invariants, invariants
from flashsale.rules.reservation import RESERVED, SaleKeys
from flashsale.settings import Settings
from flashsale.stack.control import Stack
from flashsale.stack.processes import free_port

SEED = int(os.environ.get("FLASHSALE_FAULT_SEED", "5"))


@dataclass
class Tally:
    injections: Counter = field(default_factory=Counter)  # what was broken, and how often
    sales: int = 0  # sales checked against the invariants
    orders: int = 0  # orders answered 202 in those sales
    lost: int = 0  # of those, not CONFIRMED or CANCELLED once settled
    oversold: int = 0
    double_reservations: int = 0  # stock taken twice for one order, or a user over the limit
    charged_twice: int = 0  # orders with more than one successful charge
    not_paid_once: int = 0  # CONFIRMED orders without a charge, others with one not refunded once, units not back
    overdue: int = 0  # orders RESERVED past the payment deadline and the time to settle (invariant 8)
    lost_by_design: int = 0  # accepted, then lost with a memory broker's contents: the documented risk
    hostile: Counter = field(default_factory=Counter)  # generated requests, and how many got a 5xx

    def line(self) -> str:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.injections.items()))
        return (f"injections {sum(self.injections.values())} ({kinds}); sales {self.sales}, orders {self.orders}, "
                f"lost {self.lost}, oversold {self.oversold}, double reservations {self.double_reservations}, "
                f"charged twice {self.charged_twice}, not paid once {self.not_paid_once}, overdue {self.overdue}; "
                f"lost with the memory broker's contents (documented, not counted) {self.lost_by_design}; "
                f"generated requests {self.hostile['requests']}, 5xx {self.hostile['5xx']}; seed {SEED}")


TALLY = Tally()


def pytest_terminal_summary(terminalreporter):
    if TALLY.sales or TALLY.injections or TALLY.hostile:
        terminalreporter.write_sep("=", "fault suite")
        terminalreporter.write_line(TALLY.line())


def checked(stack: Stack, sale_id: int, accepted: list[str]) -> Invariants:
    """The contract's invariants for one settled sale, counted into the tally."""
    settings = stack.wired()
    state = invariants(settings, sale_id, accepted)
    decisions = redis_adapter.connect(settings.redis_url).hvals(SaleKeys(sale_id).decisions)
    reserved = sum(d.decode() == RESERVED for d in decisions)
    TALLY.sales += 1
    TALLY.orders += len(set(accepted))
    TALLY.lost += state.lost
    TALLY.oversold += state.oversold
    TALLY.double_reservations += max(0, state.initialStock - state.availableStock - reserved) + state.overLimitUsers
    TALLY.charged_twice += state.chargedTwice
    TALLY.not_paid_once += state.unpaid + state.paidButCancelled + state.refundedTwice + state.notReleased
    TALLY.overdue += state.overdue
    return state


def wait_for(check, timeout: float, every: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return False


# The fault tests assert first come, first served: the first buyers' orders are the ones paid. A restart here can
# outlast the default 30 s payment deadline (Apache Kafka took over 60 s to start on this machine under load), and
# the deadline would then rightly cancel orders those tests expect paid. So their stacks allow 120 s; invariants 7
# and 8 are still checked after every fault, and the deadline itself is tested in test_payment_deadline.py.
FAULT_PAYMENT_DEADLINE_S = 120


def new_stack(home, **settings) -> Stack:
    return Stack(Settings(home=home, gateway_port=free_port(), shop_port=free_port(), psp_port=free_port(),
                          **{"payment_deadline_s": FAULT_PAYMENT_DEADLINE_S, **settings}))


@pytest.fixture(scope="package")
def fault_stack(tmp_path_factory):
    """One memory-broker stack for the suite; every test leaves it whole (`up` starts what is missing)."""
    stack = new_stack(tmp_path_factory.mktemp("faults"))
    try:
        stack.up(timeout=120)
        yield stack
    finally:
        stack.down()

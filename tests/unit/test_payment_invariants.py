"""Invariants 6-8 are counted by a pure function: each wrong state below breaks exactly one rule, and the check
must reject it by that rule's name; the right states beside them pass."""
import pytest

from flashsale.harness.checks import Invariants, OrderPayments, payment_counts

DEADLINE_S, SETTLE_S = 3, 10


def judged(*orders: OrderPayments) -> Invariants:
    """A settled sale of 10 units that sold what its confirmed orders hold, and these orders' payments."""
    confirmed = sum(o.status == "CONFIRMED" for o in orders)
    return Invariants(1, 10, 10 - confirmed, confirmed, confirmed, len(orders) - confirmed, 0, 0, 0,
                      reserved=sum(o.status == "RESERVED" for o in orders),
                      **payment_counts(orders, DEADLINE_S, SETTLE_S))


def paid(order: str) -> OrderPayments:
    return OrderPayments(order, "CONFIRMED", None, charges=1, refunds=0, waitedS=1)


def expired(order: str, refunds: int = 0, charges: int = 0) -> OrderPayments:
    return OrderPayments(order, "CANCELLED", "PAYMENT_TIMEOUT", charges=charges, refunds=refunds, waitedS=1)


RIGHT = {
    "paid and confirmed": [paid("a")],
    "expired, never charged": [paid("a"), expired("b")],
    "expired, charged late, refunded once": [paid("a"), expired("b", refunds=1)],
    "reserved, within the deadline and its settling": [OrderPayments("r", "RESERVED", None, 0, 0, waitedS=12)],
}


@pytest.mark.parametrize("orders", RIGHT.values(), ids=RIGHT.keys())
def test_a_sale_where_every_charge_is_confirmed_or_refunded_once_and_nobody_waits_too_long_passes(orders):
    state = judged(*orders)
    assert state.nobody_pays_for_nothing and state.nobody_waits_forever and state.paid_once, state.as_dict()


WRONG = {  # rule broken -> a state that breaks it and no other of invariants 7 and 8
    "nobody_pays_for_nothing": [
        [paid("a"), expired("b", charges=1)],  # charged after it expired, never refunded
        [paid("a"), OrderPayments("c", "CANCELLED", "SOLD_OUT", charges=1, refunds=0, waitedS=1)],  # no unit, charged
        [paid("a"), expired("b", refunds=2)],  # refunded twice
    ],
    "nobody_waits_forever": [
        [paid("a"), OrderPayments("r", "RESERVED", None, 0, 0, waitedS=DEADLINE_S + SETTLE_S + 1)],
    ],
}


@pytest.mark.parametrize("rule, orders", [(rule, orders) for rule, states in WRONG.items() for orders in states],
                         ids=[f"{rule}-{i}" for rule, states in WRONG.items() for i in range(len(states))])
def test_a_state_that_breaks_one_payment_rule_is_rejected_by_that_rule(rule, orders):
    state = judged(*orders)
    assert not state.ok
    assert not getattr(state, rule), state.as_dict()
    others = {"nobody_pays_for_nothing", "nobody_waits_forever"} - {rule}
    assert all(getattr(state, other) for other in others), state.as_dict()

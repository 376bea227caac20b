"""Exercise 15: a read model (phones sold per second) built by replaying the log.

The learner writes `sales_per_second(events, sale_id) -> dict[str, int]`: for each second
('2025-06-01T12:00:03', the first 19 characters of occurredAt), the units whose order was
first confirmed in it. The check feeds it the real `order.events` of the notebook's sale,
shuffled, mixed with another sale's events, and again after the whole sale has been sent
once more through the running services (which then confirm every order a second time).
"""
import random

from flashsale import events as ev
from flashsale.adapters import postgres
from flashsale.lab.exercises import Wrong, expect, passed, short
from flashsale.lab.replay import caught_up, read_topic, sale_of, send_again
from flashsale.lab.tap import events as log_events
from flashsale.stack.control import Stack


def first_confirmations(events: list[ev.Event], sale_id: int | None = None) -> dict[str, ev.Event]:
    """orderId -> its earliest order.confirmed (of sale `sale_id`, or of any sale)."""
    first: dict[str, ev.Event] = {}
    for e in events:
        if e.type == ev.ORDER_CONFIRMED and sale_id in (None, e.saleId):
            if e.orderId not in first or e.occurredAt < first[e.orderId].occurredAt:
                first[e.orderId] = e
    return first


def reference(events: list[ev.Event], sale_id: int) -> dict[str, int]:
    model: dict[str, int] = {}
    for e in first_confirmations(events, sale_id).values():
        model[e.occurredAt[:19]] = model.get(e.occurredAt[:19], 0) + e.quantity
    return dict(sorted(model.items()))


def check(stack: Stack, sales_per_second) -> None:
    settings, sale = stack.wired(), stack.sale()
    assert sale is not None, "no sale: start one with stack.reset()"
    sale_id = sale["saleId"]
    with postgres.connect(settings.database_url) as pg:
        sold = postgres.scalar(pg, "SELECT coalesce(sum(quantity), 0) FROM orders WHERE sale_id = %s "
                                   "AND status = 'CONFIRMED'", (sale_id,))
    log = log_events(stack, ev.ORDER_EVENTS)
    expected = reference(log, sale_id)
    expect(sum(expected.values()) == sold > 0, "race a sale first (the cell above): the check needs its events")

    model = judge(sales_per_second, log, sale_id, expected, sold, "the log as it is")
    seconds = f"{len(model)} second{'s' * (len(model) > 1)}"
    passed(f"{sum(model.values())} phones in {seconds}, as many as PostgreSQL has confirmed")

    shuffled = random.sample(log, len(log))
    judge(sales_per_second, shuffled, sale_id, expected, sold, "the same events in another order (partitions "
          "interleave as they like)")
    other = [e.model_copy(update={"saleId": sale_id + 1000, "orderId": f"other-{e.orderId}"}) for e in log
             if e.saleId == sale_id]
    judge(sales_per_second, log + other, sale_id, expected, sold, "the log with another sale's events in it")
    passed("the same answer in any order, and with another sale's events in the log")

    mine = [m for m in read_topic(settings, ev.ORDER_EVENTS) if sale_of(m) == sale_id]
    expect(caught_up(settings, ("orders", "inventory", "payments"), at_least=send_again(settings, mine), timeout=90),
           "the order, inventory and payment services did not catch up with the replay within 90 s: are they "
           "running?")
    again = log_events(stack, ev.ORDER_EVENTS)
    confirmations = sum(e.type == ev.ORDER_CONFIRMED and e.saleId == sale_id for e in again)
    judge(sales_per_second, again, sale_id, expected, sold, f"the log after a replay ({confirmations} confirmations "
          f"for {sold} orders: every order confirmed again, later)")
    passed(f"after the whole sale was delivered again: still {sold} phones, in the same seconds")
    print("All checks passed: any view of the sale can be rebuilt from the log alone, however often it is replayed.")


ONCE = ("The log holds some events more than once (delivery is at least once; a replay sends everything again): "
        "count each orderId once, at its first order.confirmed")
SALES = "The log holds every sale there ever was: count only the events whose saleId is sale_id"


def judge(sales_per_second, events, sale_id: int, expected: dict, sold: int, what: str) -> dict:
    model = sales_per_second(list(events), sale_id)
    expect(isinstance(model, dict), f"sales_per_second must return a dict {{second: units}}; it returned {model!r}")
    total = sum(model.values())
    expect(total == sold, f"with {what}, your model counts {total} phones sold; PostgreSQL has {sold} confirmed. "
           + ("Count the quantity of every order.confirmed of this sale" if total < sold else
              SALES if total == sum(e.quantity for e in first_confirmations(events).values()) else ONCE))
    if total == sold and model != expected:
        wrong = [f"{k}: {model.get(k, 0)} instead of {expected.get(k, 0)}"
                 for k in sorted(set(model) | set(expected)) if model.get(k) != expected.get(k)]
        raise Wrong(f"with {what}, the total is right but the seconds are not ({short(wrong)}): put each order in "
                    "the second of its first order.confirmed, event.occurredAt[:19]")
    return model

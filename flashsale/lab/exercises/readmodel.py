"""Exercise 15: a read model (phones sold per second) built by replaying the log.

The learner writes `sales_per_second(events, sale_id) -> dict[str, int]`: for each second
('2025-06-01T12:00:03', the first 19 characters of occurredAt), the phones of the orders first
confirmed in it. The check races a sale of its own through the running services, with orders of 1 to
3 phones, and feeds the function that sale's real `order.events`, then the whole log with other sales
in it; then it sends the whole sale once more through the services, which confirm every order again,
a second or more later, and feeds it the log as it is, then reversed and shuffled. Each step changes
one thing from the step before, so the step that fails names the rule that is broken.
"""
import random
import time

from flashsale import events as ev
from flashsale.adapters import postgres
from flashsale.harness.load import _run, swarm
from flashsale.lab.exercises import Rule, Wrong, expect, run_id, short, step
from flashsale.lab.replay import caught_up, read_topic, sale_of, send_again
from flashsale.lab.tap import events as log_events
from flashsale.stack.control import Stack

RULES = (
    Rule(1, "For each second (the first 19 characters of `occurredAt`, as text), the phones of the orders first "
            "confirmed in it: the sum of their `quantity`, in a dict."),
    Rule(2, "Each order counts once, however many times the log confirms it."),
    Rule(3, "It counts in the second of its earliest `order.confirmed`."),
    Rule(4, "Only the orders of sale `sale_id` count."),
    Rule(5, "The answer does not depend on the order of `events`."),
)
SHAPE, ONCE, EARLIEST, SALE, ANY_ORDER = RULES
STEPS = {
    "A": "one sale's events, each of its orders of 1 to 3 phones confirmed once",
    "B": "the whole log, other sales' events in it",
    "C": "the log after the whole sale was delivered again, and the services confirmed every order again, a second "
         "later or more",
    "D": "that log reversed, then shuffled",
}
BUYERS, STOCK, MOST = 60, 60, 3  # 60 buyers ask for 1, 2 or 3 phones (120 in all) of 60: at most 20 orders of one


def obvious(events: list[ev.Event], sale_id: int) -> dict[str, int]:
    """The obvious answer, and the subject of the notebook's prediction: every order.confirmed of the sale, its
    phones added to its second."""
    model: dict[str, int] = {}
    for e in events:
        if e.type == ev.ORDER_CONFIRMED and e.saleId == sale_id:
            model[e.occurredAt[:19]] = model.get(e.occurredAt[:19], 0) + e.quantity
    return model


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


def race(stack: Stack, timeout: float = 90) -> tuple[int, int, list[ev.Event]]:
    """A sale of the check's own: `BUYERS` buyers at once for `STOCK` phones, each asking for 1 to `MOST`. Once every
    order of it is decided in PostgreSQL and the log confirms as many phones: the sale's id, the phones, the log.

    Waited for by the sale's rows, not by the answers the buyers got: under load a buyer's POST can time out, or
    get a 503, after the gateway has published its order (seen once on a machine with a load average of 55)."""
    settings, run = stack.wired(), run_id()
    sale = stack.reset(stock=STOCK, per_user_limit=MOST)
    bodies = [{"userId": f"ex15-{run}-{i}", "productId": settings.product_id, "quantity": 1 + i % MOST}
              for i in range(BUYERS)]
    _run(swarm(settings.gateway_url + "/api/orders", bodies))
    deadline = time.monotonic() + timeout
    while True:
        with postgres.connect(settings.database_url) as pg:
            sold, undecided = pg.execute(
                "SELECT coalesce(sum(quantity) FILTER (WHERE status = 'CONFIRMED'), 0), "
                "count(*) FILTER (WHERE status NOT IN ('CONFIRMED', 'CANCELLED')) FROM orders WHERE sale_id = %s",
                (sale.saleId,)).fetchone() or (0, 0)
        log = log_events(stack, ev.ORDER_EVENTS) if undecided == 0 else []
        if log and sum(reference(log, sale.saleId).values()) == sold > 0:
            return sale.saleId, int(sold), log
        expect(time.monotonic() < deadline, f"the check's sale was not decided within {timeout:g} s ({undecided} "
               "orders undecided, or the log behind PostgreSQL): are the order, inventory and payment services "
               "running?")
        time.sleep(0.5)


def check(stack: Stack, sales_per_second) -> None:
    sale_id, sold, log = race(stack)
    first = first_confirmations(log, sale_id)
    expected = reference(log, sale_id)
    expect(len(first) < sold, "every confirmed order of the check's sale was of one phone: run the check again")
    print(f"  the check's sale: {sold} phones confirmed in {len(first)} orders of 1 to {MOST}, in {len(expected)} "
          f"second{'s' * (len(expected) > 1)}")

    with step("A", STEPS["A"]):
        mine = [e for e in log if e.saleId == sale_id and (e.type != ev.ORDER_CONFIRMED or e is first[e.orderId])]
        judge(sales_per_second, mine, sale_id, SHAPE, "one sale's events, each order confirmed once")

    with step("B", STEPS["B"]):
        other = max(e.saleId for e in log) + 1  # a sale no event names yet: the same orders again, under other ids
        copies = [e.model_copy(update={"saleId": other, "orderId": f"other-{e.orderId}"}) for e in mine]
        judge(sales_per_second, log + copies, sale_id, SALE, "the whole log, other sales in it")

    with step("C", STEPS["C"]):
        replay(stack, sale_id, max(expected))
        again = log_events(stack, ev.ORDER_EVENTS)
        confirmations = sum(e.type == ev.ORDER_CONFIRMED and e.saleId == sale_id for e in again)
        judge(sales_per_second, again, sale_id, None, f"the log after a replay ({confirmations} confirmations of "
              f"{len(first)} orders, the later ones a second on)")

    with step("D", STEPS["D"]):
        backwards = list(reversed(again))  # every order's latest confirmation now comes first
        judge(sales_per_second, backwards, sale_id, ANY_ORDER, "the log after the replay, reversed")
        judge(sales_per_second, random.sample(again, len(again)), sale_id, ANY_ORDER,
              "the log after the replay, shuffled (partitions interleave as they like)")
    print("All checks passed: any view of the sale can be rebuilt from the log alone, however often it is replayed.")


def replay(stack: Stack, sale_id: int, last_second: str) -> None:
    """Send every message of the sale again, once the clock is past the second of its last confirmation: every order
    is then confirmed again in a later second than its first confirmation (by construction, not by luck)."""
    settings = stack.wired()
    while ev.now_iso()[:19] <= last_second:
        time.sleep(0.05)
    mine = [m for m in read_topic(settings, ev.ORDER_EVENTS) if sale_of(m) == sale_id]
    expect(caught_up(settings, ("orders", "inventory", "payments"), at_least=send_again(settings, mine), timeout=90),
           "the order, inventory and payment services did not catch up with the replay within 90 s: are they "
           "running?")


def judge(sales_per_second, events, sale_id: int, rule: Rule | None, what: str) -> dict:
    """The learner's model of `events`, compared with the right one; a difference breaks `rule` (None: after the
    replay, where more phones, or fewer, break rule 2 and the right phones in the wrong seconds rule 3)."""
    expected = reference(events, sale_id)
    model = sales_per_second(list(events), sale_id)
    expect(isinstance(model, dict), f"sales_per_second must return a dict {{second: phones}}; it returned {model!r}",
           SHAPE)
    if model == expected:
        return model
    total, sold = sum(model.values()), sum(expected.values())
    wrong = [f"{k}: {model.get(k, 0)} instead of {expected.get(k, 0)}"
             for k in sorted(set(model) | set(expected), key=str) if model.get(k) != expected.get(k)]
    if rule is None:
        rule = ONCE if total != sold else EARLIEST
    raise Wrong(f"with {what}, your model says {short(wrong)}; the sale sold {sold} phones. "
                + ADVICE[rule.number](total, sold), rule)


ADVICE = {
    1: lambda total, sold: ("Sum each order's quantity (an order can be of several phones) under "
                            "event.occurredAt[:19]" if total != sold else "The key is event.occurredAt[:19]"),
    2: lambda total, sold: ("The log holds some events more than once (delivery is at least once; a replay sends "
                            "everything again, and the services confirm every order again, with a new eventId): "
                            "count each orderId once"),
    3: lambda total, sold: ("The total is right, the seconds are not: put each order in the second of its first "
                            "order.confirmed (the earliest occurredAt), not of a later one"),
    4: lambda total, sold: "The log holds every sale there ever was: count only the events whose saleId is sale_id",
    5: lambda total, sold: ("The same events in another order gave another answer: the log's order is not time's "
                            "order. Keep, for each orderId, the confirmation with the earliest occurredAt, whichever "
                            "comes first in the list"),
}

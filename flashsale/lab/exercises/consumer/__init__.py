"""Exercise 11: the order consumer, idempotent under redelivery.

The learner writes `handle(conn, event) -> Event | None`: apply one event to the real
`orders` table, return the event that announces the row's state. The check first
delivers events by hand, against the real PostgreSQL: each kind once (a multi-unit order
among them); each kind again after its batch rolled back; each again, late and out of
turn, contrary decisions in both directions; then twice at once, in two processes of
their own (as two consumers during a rebalance), the first transaction held open until
the second waits for one of its locks, so that a check-then-act race happens every time.

Then the learner's handler *is* the order service: two processes of their own consume the
real topics as group `exercise11-orders` (the notebook's stack runs no order service),
between the real gateway and inventory, while 1,000 buyers buy one or two phones each. The
check kills (SIGKILL) a process at six points it chooses by batch, not by time: after the
database commit and before the publish (the announcements of a committed batch lost),
after the publish and before the offsets' commit (the batch delivered again), and after
that commit; then it restarts it. Each partition is taken as the services take it
(`kafka.member`, `kafka.ownership`): a group member on Apache Kafka, by number on tansu.

A failure of an event's first delivery (a SQL error, say) shows as it is; only a failure
on a repeated, late or concurrent delivery is reported as the rule it breaks.
"""
from typing import TYPE_CHECKING

from flashsale import events as ev
from flashsale.adapters import postgres
from flashsale.lab.exercises import run_id, step
from flashsale.lab.exercises.consumer.at_once import at_once
from flashsale.lab.exercises.consumer.by_hand import after_a_rollback, again_late_and_out_of_turn, once
from flashsale.lab.exercises.consumer.rules import DECIDES, RULES, STEPS
from flashsale.lab.exercises.consumer.service import as_the_order_service

if TYPE_CHECKING:
    from flashsale.stack.control import Stack

__all__ = ["RULES", "STEPS", "by_hand", "check", "naive"]


def naive(conn, event: ev.Event) -> ev.Event | None:
    """The obvious handler, and the subject of the notebook's prediction: an insert, an update, and the event
    that each asked for."""
    if event.type == ev.ORDER_CREATED:
        conn.execute("INSERT INTO orders (order_id, sale_id, user_id, product_id, quantity, status) "
                     "VALUES (%s, %s, %s, %s, %s, 'PENDING')",
                     (event.orderId, event.saleId, event.userId, event.productId, event.quantity))
        return event.next(ev.ORDER_SAVED)
    if event.type in DECIDES:
        conn.execute("UPDATE orders SET status = %s, reason = %s, updated_at = now() WHERE order_id = %s",
                     (DECIDES[event.type], event.reason, event.orderId))
        return event.next(ev.ORDER_CONFIRMED if event.type == ev.STOCK_RESERVED else ev.ORDER_CANCELLED,
                          reason=event.reason)
    return None


def check(stack: "Stack", handle, buyers: int = 1000, stock: int = 100) -> None:
    settings = stack.wired()
    by_hand(settings.database_url, handle, run_id())
    with step("E", STEPS["E"]):
        as_the_order_service(stack, handle, buyers, stock)
    print("All checks passed: compare with flashsale.services.orders.handle, which does the same for a whole batch.")


def by_hand(database_url: str, handle, run: str) -> None:
    """Steps A to D: the events delivered one by one, against the real PostgreSQL."""
    with postgres.connect(database_url) as conn:
        with step("A", STEPS["A"]):
            once(conn, handle, run)
        with step("B", STEPS["B"]):
            after_a_rollback(conn, handle, run)
        with step("C", STEPS["C"]):
            again_late_and_out_of_turn(conn, handle, run)
    with step("D", STEPS["D"]):
        at_once(database_url, handle, run)

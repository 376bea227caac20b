"""The saga's deadline: an order RESERVED longer than `payment_deadline_s` is cancelled, PAYMENT_TIMEOUT.

The orders service's loop runs it between batches (a `Timer` of adapters/kafka/loop.py), about once a second:

1. One guarded UPDATE moves RESERVED rows older than the deadline (by the row's own clock, PostgreSQL's) to
   CANCELLED with reason PAYMENT_TIMEOUT. payment.succeeded moves the same rows RESERVED -> CONFIRMED with a
   guarded UPDATE too, so for each row exactly one of them wins: "paid" and "expired" never both happen.
2. The expired rows are marked not yet announced, in the same statement (an outbox flag). The loop publishes
   `order.expired` (inventory gives the unit back) and `order.cancelled` for each, and only once the broker has
   acknowledged them is the flag cleared. A crash in between announces them again: consumers take it twice.

A charge that succeeds after the expiry is refunded: services/orders.py asks for it (payment.refund_due).
"""
import time

import psycopg
import psycopg_pool

from flashsale import events as ev
from flashsale.adapters import postgres
from flashsale.adapters.dead_letters import Postponed
from flashsale.settings import Settings

EVERY_S = 1.0  # how often the deadline is looked at: an expiry is at most this late
BATCH = 500  # announcements per tick: a sale of thousands expired at once is announced over a few ticks

EXPIRE = """
    UPDATE orders SET status = 'CANCELLED', reason = %(reason)s, announced = false, updated_at = now()
    WHERE status = 'RESERVED' AND updated_at < now() - make_interval(secs => %(deadline)s)"""
UNANNOUNCED = """
    SELECT order_id, user_id, product_id, quantity, sale_id FROM orders
    WHERE NOT announced ORDER BY updated_at LIMIT %(batch)s"""
ANNOUNCED = "UPDATE orders SET announced = true WHERE order_id = ANY(%s)"


def expire(conn: psycopg.Connection, deadline_s: float) -> list[ev.Event]:
    """Cancel the orders RESERVED longer than `deadline_s`; the events of every expiry not yet announced."""
    conn.execute(EXPIRE, {"reason": ev.PAYMENT_TIMEOUT_REASON, "deadline": deadline_s})
    rows = conn.execute(UNANNOUNCED, {"batch": BATCH}).fetchall()
    out = []
    for order_id, user_id, product_id, quantity, sale_id in rows:
        expired = ev.Event(type=ev.ORDER_EXPIRED, orderId=order_id, userId=user_id, productId=product_id,
                           quantity=quantity, saleId=sale_id, reason=ev.PAYMENT_TIMEOUT_REASON)
        out += [expired, expired.next(ev.ORDER_CANCELLED, reason=ev.PAYMENT_TIMEOUT_REASON)]
    return out


def announced(conn: psycopg.Connection, events: list[ev.Event]) -> None:
    conn.execute(ANNOUNCED, (list({e.orderId for e in events}),))


class Deadline:
    """The orders loop's timer: `due` expires and returns what to announce, `announced` clears the flags."""

    def __init__(self, pool: psycopg_pool.ConnectionPool, deadline_s: float, every_s: float = EVERY_S):
        self.pool, self.deadline_s, self.every_s = pool, deadline_s, every_s
        self.next_at = 0.0

    def due(self) -> list[ev.Event]:
        if time.monotonic() < self.next_at:
            return []
        self.next_at = time.monotonic() + self.every_s
        try:
            with self.pool.connection() as conn:
                return expire(conn, self.deadline_s)
        except psycopg.OperationalError as error:
            raise Postponed(f"PostgreSQL is unavailable: {error}") from error

    def announced(self, events: list[ev.Event]) -> None:
        try:
            with self.pool.connection() as conn:
                announced(conn, events)
        except psycopg.OperationalError as error:  # announced again at the next tick: consumers take it twice
            raise Postponed(f"PostgreSQL is unavailable: {error}") from error


def deadline(settings: Settings) -> Deadline:
    return Deadline(postgres.pool(settings.database_url, size=1), settings.payment_deadline_s)

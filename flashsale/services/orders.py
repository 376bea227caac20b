"""The order service: the orders table follows the events.

order.created          -> row PENDING    -> order.saved
inventory.reserved     -> row RESERVED   -> order.reserved     (a unit is held; payments charges)
inventory.insufficient -> row CANCELLED  -> order.cancelled
payment.succeeded      -> row CONFIRMED  -> order.confirmed
payment.failed         -> row CANCELLED  -> order.cancelled    (reason PAYMENT_FAILED; inventory releases)
(deadline passed)      -> row CANCELLED  -> order.expired, order.cancelled  (PAYMENT_TIMEOUT: expiry.py)
payment.succeeded, too late            -> payment.refund_due (the row stays CANCELLED; payments refunds)
payment.refunded       -> row refunded   -> order.cancelled    (PAYMENT_TIMEOUT, refunded: the buyer is told)

Every event may arrive twice, and events of different topics in any order. The row
is the dedupe: an insert that finds the row does nothing, a row only moves forward
(PENDING -> RESERVED -> CONFIRMED or CANCELLED, never back), and the event we send
out always tells the row's state, so a second delivery changes nothing. A whole
batch is four statements at most, in one transaction, however many events.
"""
import psycopg

from flashsale import events as ev
from flashsale.adapters import postgres
from flashsale.adapters.dead_letters import Handler, Postponed
from flashsale.services.expiry import deadline
from flashsale.services.runner import run_consumer_service
from flashsale.settings import Settings

TOPICS = [ev.ORDER_EVENTS, ev.INVENTORY_EVENTS, ev.PAYMENT_EVENTS]

SETTLES = {ev.STOCK_RESERVED: "RESERVED", ev.STOCK_INSUFFICIENT: "CANCELLED",
           ev.PAYMENT_SUCCEEDED: "CONFIRMED", ev.PAYMENT_FAILED: "CANCELLED"}
ANNOUNCE = {"PENDING": ev.ORDER_SAVED, "RESERVED": ev.ORDER_RESERVED, "CONFIRMED": ev.ORDER_CONFIRMED,
            "CANCELLED": ev.ORDER_CANCELLED}

INSERT_PENDING = """
    INSERT INTO orders (order_id, sale_id, user_id, product_id, quantity, status)
    SELECT *, 'PENDING' FROM unnest(%s::text[], %s::int[], %s::text[], %s::text[], %s::int[])
    ON CONFLICT (order_id) DO NOTHING"""
MOVE_FORWARD = """
    UPDATE orders o SET status = d.status, reason = d.reason, updated_at = now()
    FROM unnest(%s::text[], %s::text[], %s::text[]) AS d(order_id, status, reason)
    WHERE o.order_id = d.order_id
      AND (o.status = 'PENDING' OR (o.status = 'RESERVED' AND d.status IN ('CONFIRMED', 'CANCELLED')))"""
RECORD_REFUND = """
    UPDATE orders SET refunded = true, updated_at = now()
    WHERE order_id = ANY(%s) AND status = 'CANCELLED' AND NOT refunded"""


def furthest(decided: list[ev.Event]) -> dict[str, ev.Event]:
    """One event per order, the one that takes it furthest: an UPDATE joins each row to one row of its input."""
    chosen: dict[str, ev.Event] = {}
    for event in decided:
        if event.orderId not in chosen or SETTLES[chosen[event.orderId].type] == "RESERVED":
            chosen[event.orderId] = event
    return chosen


def handle(conn: psycopg.Connection, batch: list[ev.Event]) -> list[ev.Event]:
    """Apply a batch in one transaction; return the events that announce each order's state."""
    created = {e.orderId: e for e in batch if e.type == ev.ORDER_CREATED}
    decided = furthest([e for e in batch if e.type in SETTLES])  # our own announcements come back too: ignored
    refunds = {e.orderId: e for e in batch if e.type == ev.PAYMENT_REFUNDED}
    if not created and not decided and not refunds:
        return []
    with conn.transaction():
        if created:
            conn.execute(INSERT_PENDING, ([e.orderId for e in created.values()], [e.saleId for e in created.values()],
                                          [e.userId for e in created.values()], [e.productId for e in created.values()],
                                          [e.quantity for e in created.values()]))
        if decided:
            conn.execute(MOVE_FORWARD, (list(decided), [SETTLES[e.type] for e in decided.values()],
                                        [e.reason for e in decided.values()]))
        if refunds:
            conn.execute(RECORD_REFUND, (list(refunds),))
        rows = conn.execute("SELECT order_id, status, reason, refunded FROM orders WHERE order_id = ANY(%s)",
                            (list(created.keys() | decided.keys() | refunds.keys()),)).fetchall()
    state = {order_id: (status, reason, refunded) for order_id, status, reason, refunded in rows}
    out = []
    for event in {**refunds, **created, **decided}.values():  # one per order: decided, else created, else refunded
        if event.orderId not in state:
            continue  # a decision about an order never recorded (a forged event): nothing to update
        status, reason, refunded = state[event.orderId]
        if event.type == ev.ORDER_CREATED and status != "PENDING":
            continue  # already decided: inventory need not hear of it again
        out.append(event.next(ANNOUNCE[status], reason=reason, refunded=refunded or None))
        if event.type == ev.PAYMENT_SUCCEEDED and reason == ev.PAYMENT_TIMEOUT_REASON and not refunded:
            out.append(event.next(ev.REFUND_DUE, reason=reason))  # paid after it expired: give the money back
    return out


def handler(settings: Settings) -> Handler:
    # A pool of one that checks its connection: after a PostgreSQL restart the retried batch gets a fresh one.
    pool = postgres.pool(settings.database_url, size=1)

    def handle_batch(batch: list[ev.Event]) -> list[ev.Event]:
        try:
            with pool.connection() as conn:
                return handle(conn, batch)
        except psycopg.OperationalError as error:  # PostgreSQL down or restarting: wait; dead-letter nothing
            raise Postponed(f"PostgreSQL is unavailable: {error}") from error

    return handle_batch


if __name__ == "__main__":
    run_consumer_service("orders", TOPICS, handler, deadline)

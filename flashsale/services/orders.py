"""The order service: the orders table follows the events.

order.created          -> row PENDING    -> order.saved
inventory.reserved     -> row CONFIRMED  -> order.confirmed
inventory.insufficient -> row CANCELLED  -> order.cancelled

Every event may arrive twice. The row is the dedupe: an insert that finds the
row does nothing, an update only moves a PENDING row, and the event we send
out always tells the row's state, so a second delivery changes nothing.
A whole batch is three statements in one transaction, however many events.
"""
from flashsale import events as ev
from flashsale.adapters import kafka, postgres
from flashsale.services import configure_logging, tune_gc
from flashsale.settings import Settings

FINAL = {ev.STOCK_RESERVED: "CONFIRMED", ev.STOCK_INSUFFICIENT: "CANCELLED"}
ANNOUNCE = {"PENDING": ev.ORDER_SAVED, "CONFIRMED": ev.ORDER_CONFIRMED, "CANCELLED": ev.ORDER_CANCELLED}

INSERT_PENDING = """
    INSERT INTO orders (order_id, sale_id, user_id, product_id, quantity, status)
    SELECT *, 'PENDING' FROM unnest(%s::text[], %s::int[], %s::text[], %s::text[], %s::int[])
    ON CONFLICT (order_id) DO NOTHING"""
SETTLE_PENDING = """
    UPDATE orders o SET status = d.status, reason = d.reason, updated_at = now()
    FROM unnest(%s::text[], %s::text[], %s::text[]) AS d(order_id, status, reason)
    WHERE o.order_id = d.order_id AND o.status = 'PENDING'"""


def handle(conn, batch: list[ev.Event]) -> list[ev.Event]:
    """Apply a batch in one transaction; return the events that announce each order's state."""
    created = [e for e in batch if e.type == ev.ORDER_CREATED]
    decided = [e for e in batch if e.type in FINAL]  # our own announcements come back too: ignored
    if not created and not decided:
        return []
    with conn.transaction():
        if created:
            conn.execute(INSERT_PENDING, ([e.orderId for e in created], [e.saleId for e in created],
                                          [e.userId for e in created], [e.productId for e in created],
                                          [e.quantity for e in created]))
        if decided:
            conn.execute(SETTLE_PENDING, ([e.orderId for e in decided], [FINAL[e.type] for e in decided],
                                          [e.reason for e in decided]))
        rows = conn.execute("SELECT order_id, status, reason FROM orders WHERE order_id = ANY(%s)",
                            ([e.orderId for e in created + decided],)).fetchall()
    state = {order_id: (status, reason) for order_id, status, reason in rows}
    out = []
    for event in created + decided:
        if event.orderId not in state:
            continue  # a decision about an order never recorded (a forged event): nothing to update
        status, reason = state[event.orderId]
        if event.type == ev.ORDER_CREATED and status != "PENDING":
            continue  # already decided: inventory need not hear of it again
        out.append(event.next(ANNOUNCE[status], reason=reason))
    return out


def main() -> None:
    configure_logging("orders")
    tune_gc()
    settings = Settings()
    # A pool of one that checks its connection: after a PostgreSQL restart the retried batch gets a fresh one.
    pool = postgres.pool(settings.database_url, size=1)

    def handle_batch(batch: list[ev.Event]) -> list[ev.Event]:
        with pool.connection() as conn:
            return handle(conn, batch)

    kafka.run_consumer(settings, "orders", [ev.ORDER_EVENTS, ev.INVENTORY_EVENTS], handle_batch)


if __name__ == "__main__":
    main()

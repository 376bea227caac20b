"""The order service: the orders table follows the events.

order.created      -> row PENDING            -> order.saved
inventory.reserved -> row CONFIRMED          -> order.confirmed
inventory.insufficient -> row CANCELLED      -> order.cancelled

Every event may arrive twice. The row is the dedupe: an insert that finds the
row does nothing, an update only moves a PENDING row, and the event we send
out always tells the row's state, so a second delivery changes nothing.
"""
from flashsale import events as ev
from flashsale.adapters import kafka, postgres
from flashsale.services import configure_logging
from flashsale.settings import Settings

FINAL = {ev.STOCK_RESERVED: "CONFIRMED", ev.STOCK_INSUFFICIENT: "CANCELLED"}
ANNOUNCE = {"PENDING": ev.ORDER_SAVED, "CONFIRMED": ev.ORDER_CONFIRMED, "CANCELLED": ev.ORDER_CANCELLED}


def handle(conn, batch: list[ev.Event]) -> list[ev.Event]:
    """Apply a batch in one transaction; return the events that announce the new states."""
    out = []
    with conn.transaction():
        for event in batch:
            if event.type == ev.ORDER_CREATED:
                conn.execute("INSERT INTO orders (order_id, sale_id, user_id, product_id, quantity, status) "
                             "VALUES (%s, %s, %s, %s, %s, 'PENDING') ON CONFLICT (order_id) DO NOTHING",
                             (event.orderId, event.saleId, event.userId, event.productId, event.quantity))
            elif event.type in FINAL:
                conn.execute("UPDATE orders SET status = %s, reason = %s, updated_at = now() "
                             "WHERE order_id = %s AND status = 'PENDING'",
                             (FINAL[event.type], event.reason, event.orderId))
            else:
                continue  # our own announcements come back on order.events: nothing to do
            row = conn.execute("SELECT status, reason FROM orders WHERE order_id = %s", (event.orderId,)).fetchone()
            if row is None:
                continue  # a decision about an order never recorded (a forged event): nothing to update
            status, reason = row
            if event.type == ev.ORDER_CREATED and status != "PENDING":
                continue  # already decided: inventory need not hear of it again
            out.append(event.next(ANNOUNCE[status], reason=reason))
    return out


def main() -> None:
    configure_logging("orders")
    settings = Settings()
    conn = postgres.connect(settings.database_url)
    kafka.run_consumer(settings.kafka_bootstrap_servers, "orders", [ev.ORDER_EVENTS, ev.INVENTORY_EVENTS],
                       lambda batch: handle(conn, batch), settings.partitions, settings.instance,
                       settings.instances, heartbeat=settings.home / "run" / f"orders-{settings.instance}.alive")


if __name__ == "__main__":
    main()

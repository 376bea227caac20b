"""The log is the source of truth: rebuild the orders read model from `order.events` alone.

The orders service keeps a table, and the table is only one view of the log.
Fold the log with the service's own rule (an order is PENDING once created,
then leaves PENDING once and never goes back) and you get the same rows
without asking PostgreSQL. Any other view can be folded the same way.
"""
from flashsale import events as ev
from flashsale.adapters import postgres
from flashsale.services import orders as orders_service
from flashsale.stack.control import Stack

FINAL = {ev.ORDER_CONFIRMED: "CONFIRMED", ev.ORDER_CANCELLED: "CANCELLED"}


def fold(events: list[ev.Event]) -> dict[str, dict]:
    """orderId -> {userId, quantity, status, reason}, from the events alone. A repeated event changes nothing."""
    model: dict[str, dict] = {}
    for event in events:
        if event.type == ev.ORDER_CREATED:
            model.setdefault(event.orderId, {"userId": event.userId, "quantity": event.quantity,
                                             "status": "PENDING", "reason": None})
        elif event.type in FINAL and model.get(event.orderId, {}).get("status") == "PENDING":
            model[event.orderId].update(status=FINAL[event.type], reason=event.reason)
    return model


def table(stack: Stack, sale_id: int) -> dict[str, dict]:
    """The same view, as the orders service keeps it in PostgreSQL."""
    with postgres.connect(stack.wired().database_url) as pg:
        rows = pg.execute("SELECT order_id, user_id, quantity, status, reason FROM orders WHERE sale_id = %s",
                          (sale_id,)).fetchall()
    return {order_id: {"userId": user, "quantity": quantity, "status": status, "reason": reason}
            for order_id, user, quantity, status, reason in rows}


def replay(stack: Stack, events: list[ev.Event]) -> int:
    """Hand every event once more to the orders service's own handler (what a redelivery does)."""
    with postgres.connect(stack.wired().database_url) as conn:
        return len(orders_service.handle(conn, events))

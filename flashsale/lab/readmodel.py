"""The log is the source of truth: rebuild the orders read model from what the deciders said.

The orders service keeps a table, and the table is only one view of the log. Fold the facts that others
decided (the gateway's order.created, inventory's reservation or refusal, the payment's outcome) with
the service's own rule (a row only moves forward: PENDING, RESERVED, then CONFIRMED or CANCELLED) and
you get the same rows without asking PostgreSQL. Folding the orders service's own announcements
(order.confirmed, order.cancelled) instead would only read the table back out of the log: circular.
"""
from flashsale import events as ev
from flashsale.adapters import postgres
from flashsale.services import orders as orders_service
from flashsale.stack.control import Stack

SETTLES = orders_service.SETTLES  # decision -> the status it gives a row: the service's own table


def fold(events: list[ev.Event]) -> dict[str, dict]:
    """orderId -> {userId, quantity, status, reason}, from the decisions alone, in any order of topics.

    First every order that was created, then every decision about them, each moving a row forward only;
    a repeated event changes nothing.
    """
    model: dict[str, dict] = {}
    for event in events:
        if event.type == ev.ORDER_CREATED:
            model.setdefault(event.orderId, {"userId": event.userId, "quantity": event.quantity,
                                             "status": "PENDING", "reason": None})
    for event in events:
        row = model.get(event.orderId)
        if event.type not in SETTLES or row is None:
            continue
        status = SETTLES[event.type]
        if row["status"] == "PENDING" or (row["status"] == "RESERVED" and status != "RESERVED"):
            row.update(status=status, reason=event.reason)
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

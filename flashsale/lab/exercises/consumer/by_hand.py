"""Exercise 11, steps A to C: events delivered to the learner's handler one by one, against the real PostgreSQL.

Each kind once (an order of two phones among them); each kind again after its batch failed and rolled back; each
again, late and out of turn, contrary decisions both ways, and decisions about an order never created. A failure
of an event's first delivery (a SQL error) shows as it is; a failure on a repeated, late or odd one breaks a rule.
"""
from flashsale import events as ev
from flashsale.lab.exercises import Rule, Wrong, expect
from flashsale.lab.exercises.consumer.rules import ANNOUNCES, INSERTS, MOVES, NO_SALE, NOTHING, ROWS_ONLY, STATE


def once(conn, handle, run: str) -> None:
    two = order_created(f"ex11-{run}-two", quantity=2)
    said = deliver(conn, handle, two, "the first order.created")
    expect(row(conn, two) is not None, f"after order.created ({_order(two)}) there is no row for it", INSERTS)
    expect(fields(conn, two) == _fields(two), f"after order.created the row must hold the event's fields: "
           f"{_fields(two)}; it holds {fields(conn, two)}", INSERTS)
    announced(said, "PENDING", None, "a new PENDING row is announced with order.saved (the inventory waits for it)")
    said = deliver(conn, handle, two.next(ev.STOCK_RESERVED, availableStock=98), "the first inventory.reserved")
    moved(conn, two, "CONFIRMED", None, "inventory.reserved for a PENDING order")
    announced(said, "CONFIRMED", None, "a confirmed row is announced with order.confirmed")

    refused = order_created(f"ex11-{run}-refused")
    deliver(conn, handle, refused, "order.created")
    said = deliver(conn, handle, refused.next(ev.STOCK_INSUFFICIENT, reason="SOLD_OUT", availableStock=0),
                   "the first inventory.insufficient")
    moved(conn, refused, "CANCELLED", "SOLD_OUT", "inventory.insufficient (reason SOLD_OUT) for a PENDING order")
    announced(said, "CANCELLED", "SOLD_OUT", "a cancelled row is announced with order.cancelled, and its reason")

    for other in (two.next(ev.ORDER_SAVED), two.next(ev.ORDER_CONFIRMED), refused.next(ev.ORDER_CANCELLED,
                                                                                      reason="SOLD_OUT")):
        before = row(conn, other)
        said = deliver(conn, handle, other, f"{other.type} (the service reads its own announcements too)")
        expect(said is None and row(conn, other) == before, f"{other.type} is not an event the handler acts on (the "
               "service reads order.events, where it writes its own announcements): it must change nothing and "
               f"return None; your handler returned {shown(said)}"
               + (f" and the row went {before} -> {row(conn, other)}" if row(conn, other) != before else ""), NOTHING)


def after_a_rollback(conn, handle, run: str) -> None:
    """Each kind of event in a batch that fails after the handler ran: nothing of it may stay; then it comes again."""
    again = order_created(f"ex11-{run}-again")
    deliver(conn, handle, again, "order.created in a batch that then fails", rollback=True)
    expect(row(conn, again) is None, "your handler's order.created was rolled back with its batch, yet the row is "
           f"there: {row(conn, again)}. Write through the `conn` you are given, inside the batch's transaction, so "
           "that a failed batch leaves nothing behind", ROWS_ONLY)
    said = deliver(conn, handle, again, "order.created delivered again after its batch failed", ROWS_ONLY)
    expect(row(conn, again) == ("PENDING", None) and announces(said) == "PENDING", "a batch failed after your "
           "handler had run (another event of it failed; its transaction rolled back), and the batch came again: "
           f"the order's row is {row(conn, again)} and your handler returned {shown(said)}, so the order is lost. "
           "Your handler remembered the event outside the database (in memory?), where no rollback undoes it: let "
           "the rows be the memory, they commit or roll back with the batch", ROWS_ONLY)

    for decision, status, reason in ((ev.STOCK_RESERVED, "CONFIRMED", None),
                                     (ev.STOCK_INSUFFICIENT, "CANCELLED", "PAYMENT_FAILED")):
        order = order_created(f"ex11-{run}-rolled-{status.lower()}")
        deliver(conn, handle, order, "order.created")
        event = order.next(decision, reason=reason, availableStock=0)
        deliver(conn, handle, event, f"{decision} in a batch that then fails", rollback=True)
        expect(row(conn, order) == ("PENDING", None), f"your handler's {decision} was rolled back with its batch, yet "
               f"the row is {row(conn, order)}: write through the `conn` you are given, inside the batch's "
               "transaction", ROWS_ONLY)
        said = deliver(conn, handle, event, f"{decision} delivered again after its batch failed", ROWS_ONLY)
        expect(row(conn, order) == (status, reason) and announces(said) == status, f"{decision} came again after "
               f"its batch failed and rolled back: the row is {row(conn, order)} and your handler returned "
               f"{shown(said)}; it must be {status} and announced. Your handler remembered the event outside the "
               "database, where no rollback undoes it: let the rows be the memory", ROWS_ONLY)


def again_late_and_out_of_turn(conn, handle, run: str) -> None:
    order = order_created(f"ex11-{run}-late")
    deliver(conn, handle, order, "the first order.created")
    said = deliver(conn, handle, order, "order.created delivered a second time", INSERTS)
    expect(count(conn, order) == 1 and row(conn, order) == ("PENDING", None), "order.created delivered twice must "
           f"leave one PENDING row; it left {count(conn, order)} rows, {row(conn, order)}", INSERTS)
    announced(said, "PENDING", None, "order.created delivered again while the row is PENDING must announce "
              "order.saved again: a crash after the first commit and before its publish lost the first "
              "announcement, and the inventory decides only once it hears of the order")

    reserved = order.next(ev.STOCK_RESERVED, availableStock=9)
    deliver(conn, handle, reserved, "the first inventory.reserved")
    said = deliver(conn, handle, reserved, "inventory.reserved delivered a second time", MOVES)
    announced(said, "CONFIRMED", None, "inventory.reserved delivered a second time must announce the row again, "
              "order.confirmed: a crash after the batch committed and before it published delivers the batch again, "
              "and this is the only chance left to announce it")
    contrary(conn, handle, order, order.next(ev.STOCK_INSUFFICIENT, reason="SOLD_OUT", availableStock=0),
             ("CONFIRMED", None))

    refused = order_created(f"ex11-{run}-late-refused")
    deliver(conn, handle, refused, "the first order.created")
    insufficient = refused.next(ev.STOCK_INSUFFICIENT, reason="PER_USER_LIMIT", availableStock=5)
    deliver(conn, handle, insufficient, "the first inventory.insufficient")
    said = deliver(conn, handle, insufficient, "inventory.insufficient delivered a second time", MOVES)
    announced(said, "CANCELLED", "PER_USER_LIMIT", "inventory.insufficient delivered a second time must announce "
              "the row again, order.cancelled with its reason")
    contrary(conn, handle, refused, refused.next(ev.STOCK_RESERVED, availableStock=4), ("CANCELLED", "PER_USER_LIMIT"))

    said = deliver(conn, handle, order, "order.created after the decision", INSERTS)
    expect(row(conn, order) == ("CONFIRMED", None), "a redelivered order.created moved a CONFIRMED order to "
           f"{row(conn, order)}: an insert that finds the row must do nothing (ON CONFLICT DO NOTHING)", INSERTS)
    expect(said is None, "after the decision, a redelivered order.created must return None (the inventory has "
           f"decided: do not ask it again); your handler returned {shown(said)}", NOTHING)

    ghost = order_created(f"ex11-{run}-ghost")
    for decision in (ghost.next(ev.STOCK_RESERVED, availableStock=1),
                     ghost.next(ev.STOCK_INSUFFICIENT, reason="SOLD_OUT", availableStock=0)):
        said = deliver(conn, handle, decision, f"{decision.type} for an order never created", MOVES)
        expect(count(conn, ghost) == 0, f"{decision.type} for an order never created made a row: a decision only "
               "moves a row that is there", MOVES)
        expect(said is None, f"{decision.type} for an order never created must announce nothing; your handler "
               f"returned {shown(said)}", NOTHING)


def contrary(conn, handle, order: ev.Event, event: ev.Event, decided: tuple[str, str | None]) -> None:
    """A decision against the one already taken: nothing moves, and the row's own state is announced again."""
    said = deliver(conn, handle, event, f"a late {event.type} for a {decided[0]} order", MOVES)
    expect(row(conn, order) == decided, f"a late {event.type} moved an order that was already decided: "
           f"{decided} -> {row(conn, order)}. Only a PENDING row may move (UPDATE ... WHERE status = 'PENDING'), "
           "whichever decision comes first", MOVES)
    announced(said, decided[0], decided[1], f"a late {event.type} for a {decided[0]} order must announce what the "
              "row says, not what the event asked for")


def order_created(order_id: str, quantity: int = 1) -> ev.Event:
    return ev.Event(type=ev.ORDER_CREATED, orderId=order_id, userId="alice", productId="P", quantity=quantity,
                    saleId=NO_SALE)


class Rollback(Exception):
    """The check's own: the rest of the batch failed."""


def deliver(conn, handle, event: ev.Event, what: str, rule: Rule | None = None, rollback: bool = False):
    """One event in a transaction of its own, as one batch. A failure of the event's first delivery (a SQL error)
    shows as it is; a failure on a repeated, late or odd event breaks `rule`. With `rollback`, the batch then
    fails anyway, and its transaction rolls back."""
    try:
        with conn.transaction():
            out = handle(conn, event)
            if rollback:
                raise Rollback
    except Rollback:
        return None
    except Exception as error:
        if rule is None or isinstance(error, NotImplementedError):
            error.add_note(f"(raised by your handler on {what})")
            raise
        raise Wrong(f"{what} failed with {summary(error)}. Every event may come twice, late or out of turn, and a "
                    "failing one comes back again and again, stopping its partition: the handler must be safe to "
                    "run twice", rule) from None
    return check_type(out)


def announced(said, status: str, reason: str | None, what: str) -> None:
    expect(announces(said) == status, f"{what}; your handler returned {shown(said)}", ANNOUNCES)
    expect(said.reason == reason, f"{what}; your handler's {said.type} says reason {said.reason!r}, the row "
           f"{reason!r}: announce the row's reason", ANNOUNCES)


def moved(conn, event: ev.Event, status: str, reason: str | None, what: str) -> None:
    expect(row(conn, event) == (status, reason), f"after {what} the row must be {status}"
           + (f" with reason {reason}" if reason else "") + f"; it is {row(conn, event)}", MOVES)


def check_type(out):
    expect(out is None or isinstance(out, ev.Event), f"handle must return an Event or None; it returned {out!r}",
           ANNOUNCES)
    return out


def announces(event) -> str | None:
    return STATE.get(event.type, event.type) if isinstance(event, ev.Event) else None


def shown(event) -> str:
    return event.type if isinstance(event, ev.Event) else repr(event)


def summary(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def _order(event: ev.Event) -> str:
    return f"{event.orderId}, {event.quantity} of {event.productId} for {event.userId}"


def _fields(event: ev.Event) -> tuple:
    return event.saleId, event.userId, event.productId, event.quantity


def fields(conn, event: ev.Event):
    return conn.execute("SELECT sale_id, user_id, product_id, quantity FROM orders WHERE order_id = %s",
                        (event.orderId,)).fetchone()


def row(conn, event: ev.Event):
    return conn.execute("SELECT status, reason FROM orders WHERE order_id = %s", (event.orderId,)).fetchone()


def count(conn, event: ev.Event) -> int:
    return conn.execute("SELECT count(*) FROM orders WHERE order_id = %s", (event.orderId,)).fetchone()[0]

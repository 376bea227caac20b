"""The saga's deadline in PostgreSQL: a RESERVED order past it is cancelled once and announced until the broker has
it, and "paid" and "expired" racing on one row never both win."""
import random
import threading
import uuid

import psycopg
import pytest

from flashsale import events as ev
from flashsale.adapters import postgres
from flashsale.services import expiry, orders

pytestmark = pytest.mark.broker_free  # PostgreSQL only: the same on either broker


def order_rows(conn: psycopg.Connection, sale_id: int, rows: list[tuple[str, str, float]]) -> None:
    """(orderId, status, seconds since its last move) rows of a sale no service knows."""
    for order_id, status, age in rows:
        conn.execute("INSERT INTO orders (order_id, sale_id, user_id, product_id, quantity, status, updated_at) "
                     "VALUES (%s, %s, %s, 'P', 1, %s, now() - make_interval(secs => %s))",
                     (order_id, sale_id, f"user-{order_id}", status, age))


def a_sale() -> int:
    return random.randrange(10**8, 2**31 - 1)  # no sale of the stack's: its services leave these rows alone


def test_an_order_reserved_past_the_deadline_expires_once_and_is_announced_until_marked(wired):
    sale_id = a_sale()
    late, fresh, pending, paid = (f"{name}-{uuid.uuid4()}" for name in ("late", "fresh", "pending", "paid"))
    with postgres.connect(wired.database_url) as conn, conn.transaction():  # unseen by the stack's own orders service
        order_rows(conn, sale_id, [(late, "RESERVED", 10), (fresh, "RESERVED", 1), (pending, "PENDING", 10),
                                   (paid, "CONFIRMED", 10)])

        def ours(events: list[ev.Event]) -> list[ev.Event]:  # other tests' rows may wait to be announced too
            return [e for e in events if e.saleId == sale_id]

        first = ours(expiry.expire(conn, deadline_s=5))
        again = ours(expiry.expire(conn, deadline_s=5))  # the broker never acknowledged: announced again
        expiry.announced(conn, again)
        after = ours(expiry.expire(conn, deadline_s=5))
        rows = dict(conn.execute("SELECT order_id, status || ' ' || coalesce(reason, '') FROM orders "
                                 "WHERE sale_id = %s", (sale_id,)).fetchall())
        raise psycopg.Rollback()

    assert [(e.type, e.orderId, e.reason) for e in first] == [
        (ev.ORDER_EXPIRED, late, "PAYMENT_TIMEOUT"), (ev.ORDER_CANCELLED, late, "PAYMENT_TIMEOUT")]
    assert [(e.type, e.orderId) for e in again] == [(e.type, e.orderId) for e in first] and after == []
    assert rows == {late: "CANCELLED PAYMENT_TIMEOUT", fresh: "RESERVED ", pending: "PENDING ", paid: "CONFIRMED "}


def test_paid_and_expired_racing_on_the_same_rows_never_both_win_and_a_late_payment_asks_for_a_refund(wired):
    sale_id, count = a_sale(), 200
    ids = [f"race-{uuid.uuid4()}" for _ in range(count)]
    with postgres.connect(wired.database_url) as conn:
        order_rows(conn, sale_id, [(order_id, "RESERVED", 10) for order_id in ids])
    payments = [ev.Event(type=ev.PAYMENT_SUCCEEDED, orderId=order_id, userId=f"user-{order_id}", productId="P",
                         quantity=1, saleId=sale_id) for order_id in ids]
    out: dict[str, list[ev.Event]] = {}
    start = threading.Barrier(2)

    def pay() -> None:
        with postgres.connect(wired.database_url) as conn:
            start.wait()
            out["paid"] = [e for chunk in range(0, count, 20) for e in orders.handle(conn, payments[chunk:chunk + 20])]

    def expire() -> None:
        with postgres.connect(wired.database_url) as conn:
            start.wait()
            out["expired"] = [e for e in expiry.expire(conn, deadline_s=5) if e.saleId == sale_id]

    threads = [threading.Thread(target=pay), threading.Thread(target=expire)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with postgres.connect(wired.database_url) as conn:
        rows = dict(conn.execute("SELECT order_id, status || ' ' || coalesce(reason, '') FROM orders "
                                 "WHERE sale_id = %s", (sale_id,)).fetchall())
        expiry.announced(conn, out["expired"])

    expired = {e.orderId for e in out["expired"] if e.type == ev.ORDER_EXPIRED}
    confirmed = {e.orderId for e in out["paid"] if e.type == ev.ORDER_CONFIRMED}
    refund_due = {e.orderId for e in out["paid"] if e.type == ev.REFUND_DUE}
    assert expired.isdisjoint(confirmed) and expired | confirmed == set(ids)
    assert refund_due == expired  # every payment that lost the race is to be refunded, and no other
    assert {rows[o] for o in confirmed} <= {"CONFIRMED "}
    assert {rows[o] for o in expired} <= {"CANCELLED PAYMENT_TIMEOUT"}

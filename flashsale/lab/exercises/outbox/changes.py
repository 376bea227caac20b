"""Exercise 14, steps A and B: the learner's state changes, against the real PostgreSQL.

Transactions broken half-way (a trigger makes one of the two writes fail, as a full disk would) and rolled back by
their caller, to either status; then orders of one to three phones change state both ways, after another writer's
events, and two of them again the other way.
"""
import json

import psycopg
from psycopg import sql

from flashsale import events as ev
from flashsale.lab.exercises import Wrong, expect
from flashsale.lab.exercises.log import read_since
from flashsale.lab.exercises.outbox.rules import ELSEWHERE, ONLY_PENDING, STATUS_EVENT, THE_EVENT, TOGETHER
from flashsale.settings import Settings


def set_aside(conn) -> None:
    """Rows an earlier run left unsent (or the notebook's own try) would come first: mark them, so this run's rows
    are the oldest, as the steps need."""
    left = conn.execute("UPDATE outbox SET sent_at = now() WHERE sent_at IS NULL").rowcount
    if left:
        print(f"  ({left} rows left unsent by an earlier run were set aside, marked sent)")


def same_transaction(conn, set_status, ids: list[str]) -> None:
    """A state change whose transaction is rolled back, or fails half-way, must leave neither of its two writes."""
    class Rollback(Exception):
        pass

    for order_id, status in ((ids[0], "CONFIRMED"), (ids[1], "CANCELLED")):
        try:
            with conn.transaction():
                set_status(conn, order_id, status, None if status == "CONFIRMED" else "SOLD_OUT")
                raise Rollback
        except Rollback:
            pass
        expect(status_of(conn, order_id) == "PENDING" and not rows_about(conn, order_id), f"a state change to {status} "
               "rolled back by its caller left "
               f"{'its outbox row' if rows_about(conn, order_id) else 'the status changed'} behind: write both on the "
               "connection you are given, in one transaction (with conn.transaction(): ...)", TOGETHER)
    for order_id, table in ((ids[2], "outbox"), (ids[3], "orders")):
        fail_writes(conn, table, order_id)
        try:
            set_status(conn, order_id, "CONFIRMED", None)
        except psycopg.Error:
            pass  # the write we broke failed, as it should; any other error is the learner's, and shows
        finally:
            conn.execute(sql.SQL("DROP TRIGGER IF EXISTS exercise14_fail ON {}").format(sql.Identifier(table)))
        moved, told = status_of(conn, order_id) != "PENDING", rows_about(conn, order_id)
        half = ("the order is CONFIRMED but no event about it will ever be published" if moved and not told else
                "an event will be published about a change that never happened" if told and not moved else "")
        expect(not half, f"when the {table} write failed, {half}: the state change and its outbox row must commit "
               "together or not at all (one transaction)", TOGETHER)
    # Both rolled back or failed: each can still move, and then writes its row (as when the batch comes again).
    for order_id, status in ((ids[0], "CONFIRMED"), (ids[1], "CANCELLED")):
        expect(set_status(conn, order_id, status, None if status == "CONFIRMED" else "SOLD_OUT") is True
               and status_of(conn, order_id) == status and rows_about(conn, order_id) == 1,
               f"a state change to {status} rolled back, then made again, must move the order and write its row",
               TOGETHER)


def state_changes(conn, set_status, ids: list[str], earlier: int) -> list[tuple[str, str, str]]:
    """Another writer's events first: one for a topic of the check's own, then one for each of the first `earlier`
    orders (their two events must then go in order); then every order's state change, both ways; then two of them
    again, the other way. Returns (topic, key, payload) of each unsent row of this run, oldest first."""
    orders = {o: (u, p, q, s) for o, u, p, q, s in conn.execute(
        "SELECT order_id, user_id, product_id, quantity, sale_id FROM orders WHERE order_id = ANY(%s)",
        (ids,)).fetchall()}
    for i, order_id in enumerate([ids[0], *ids[:earlier]]):
        user, product, quantity, sale_id = orders[order_id]
        event = ev.Event(type=ev.ORDER_RESERVED, orderId=order_id, userId=user, productId=product, quantity=quantity,
                         saleId=sale_id)
        conn.execute("INSERT INTO outbox (topic, key, payload) VALUES (%s, %s, %s)",
                     (ELSEWHERE if i == 0 else event.topic, event.key, event.to_json().decode()))
    for i, order_id in enumerate(ids):
        status, reason = ("CANCELLED", "SOLD_OUT") if i % 3 == 0 else ("CONFIRMED", None)
        moved = set_status(conn, order_id, status, reason)
        expect(moved is True, f"set_status must return True when it moved the order; it returned {moved!r}",
               ONLY_PENDING)
    for order_id, status, was in ((ids[0], "CONFIRMED", "CANCELLED"), (ids[1], "CANCELLED", "CONFIRMED")):
        rows = rows_about(conn, order_id)
        said = set_status(conn, order_id, status, "SOLD_OUT" if status == "CANCELLED" else None)
        expect(said is False and status_of(conn, order_id) == was and rows_about(conn, order_id) == rows,
               f"set_status({order_id!r}, {status!r}) on an order already {was} must change nothing, write no outbox "
               f"row, and return False; it returned {said!r}, the order is {status_of(conn, order_id)} and it has "
               f"{rows_about(conn, order_id) - rows} more rows", ONLY_PENDING)
    changes = conn.execute("SELECT topic, key, payload FROM outbox WHERE key = ANY(%s) ORDER BY id OFFSET %s",
                           (ids, earlier + 1)).fetchall()
    expect(len(changes) == len(ids), f"{len(ids)} state changes must write {len(ids)} outbox rows; there are "
           f"{len(changes)}", THE_EVENT)
    by_key = {key: (topic, payload) for topic, key, payload in changes}
    for i, order_id in enumerate(ids):
        expect(order_id in by_key, f"no outbox row has the key {order_id!r}: the key is the orderId (event.key), "
               "so that all events of an order land on one partition, in order", THE_EVENT)
        topic, payload = by_key[order_id]
        event = event_in(payload, f"the outbox row of {order_id}")
        status, reason = ("CANCELLED", "SOLD_OUT") if i % 3 == 0 else ("CONFIRMED", None)
        user, product, quantity, sale_id = orders[order_id]
        wanted = (STATUS_EVENT[status], order_id, user, product, quantity, sale_id, reason)
        got = (event.type, event.orderId, event.userId, event.productId, event.quantity, event.saleId, event.reason)
        expect(got == wanted, f"the outbox row of {order_id} (an order of {quantity}, {status}) must hold its "
               f"{STATUS_EVENT[status]} event with the order's own fields and the reason: {wanted}; it holds {got}",
               THE_EVENT)
        expect(topic == event.topic and payload == event.to_json().decode(), f"the outbox row of {order_id} must "
               "have topic event.topic and payload event.to_json().decode(), the event exactly as it goes on the "
               f"wire; it has topic {topic!r} and payload {payload[:80]!r}", THE_EVENT)
    run = ids[0].rsplit("-", 1)[0]
    return [tuple(r) for r in conn.execute("SELECT topic, key, payload FROM outbox WHERE key LIKE %s "
                                           "AND sent_at IS NULL ORDER BY id", (f"{run}-%",)).fetchall()]


def fail_writes(conn, table: str, order_id: str) -> None:
    """Make every write of `order_id`'s row in `table` fail. DDL takes no %s parameters: names and values go in
    through psycopg.sql, quoted as what they are (an identifier, a literal), never pasted into the text."""
    conn.execute("CREATE OR REPLACE FUNCTION exercise14_fail() RETURNS trigger LANGUAGE plpgsql AS "
                 "$$ BEGIN RAISE EXCEPTION 'the disk is full (a failure injected by the check)'; END $$")
    about = (sql.SQL("NEW.key = {id} OR position({field} in NEW.payload) > 0") if table == "outbox" else
             sql.SQL("NEW.order_id = {id}")).format(id=sql.Literal(order_id),
                                                    field=sql.Literal(f'"orderId":"{order_id}"'))
    trigger = sql.SQL("CREATE TRIGGER exercise14_fail BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW "
                      "WHEN ({about}) EXECUTE FUNCTION exercise14_fail()")
    conn.execute(trigger.format(table=sql.Identifier(table), about=about))


def status_of(conn, order_id: str) -> str:
    return conn.execute("SELECT status FROM orders WHERE order_id = %s", (order_id,)).fetchone()[0]


def rows_about(conn, order_id: str) -> int:
    """The outbox rows about an order: keyed by it, or (a wrong key) holding it in their event."""
    return conn.execute("SELECT count(*) FROM outbox WHERE key = %s OR position(%s in payload) > 0",
                        (order_id, f'"orderId":"{order_id}"')).fetchone()[0]


def event_in(payload, what: str) -> ev.Event:
    try:
        return ev.Event.model_validate_json(payload if isinstance(payload, (str, bytes)) else json.dumps(payload))
    except ValueError as error:
        raise Wrong(f"{what} is not an event's JSON ({str(error).splitlines()[0]}): store event.to_json().decode()",
                    THE_EVENT) from None


def published_keys(settings: Settings, run: str, since) -> list[str]:
    return [(m.key() or b"").decode() for m in read_since(settings, ev.ORDER_EVENTS, since)
            if (m.key() or b"").decode().startswith(f"ex14-{run}-")]

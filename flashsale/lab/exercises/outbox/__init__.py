"""Exercise 14: a transactional outbox for order status events, and its relay.

The learner writes `set_status(conn, order_id, status, reason) -> bool` (the state change
and its outbox row, in one transaction) and `relay_once(conn, producer, limit) -> int`
(publish at most `limit` unsent rows, wait for the broker, mark them sent). The check
runs them against the real PostgreSQL and broker, and the relay in processes of its own:

- it breaks transactions half-way, and rolls them back, for both statuses;
- it changes orders of one to three phones both ways, then each again the other way;
- it freezes the broker (SIGSTOP) while the relay publishes, so that every message of a
  batch fails, as the delivery callback reports;
- it runs two relays at once: the first is held inside its flush, its rows locked, while
  the second starts; the events of an order written in both batches must come in order;
- it kills (SIGKILL) the relay's process three times, at points it builds, not times:
  just before its second flush, just after it, and just after its first commit.

Nothing may be lost; duplicates are allowed only for a batch in flight at a crash (at
least once), and never from two relays at once.
"""
from typing import TYPE_CHECKING

from flashsale import events as ev
from flashsale.adapters import postgres
from flashsale.lab.exercises import expect, run_id, step
from flashsale.lab.exercises.log import ends
from flashsale.lab.exercises.outbox.changes import published_keys, same_transaction, set_aside, state_changes
from flashsale.lab.exercises.outbox.relays import (
    create_topic,
    drain,
    killed,
    read_back,
    relay_one,
    two_relays,
    unanswered,
)
from flashsale.lab.exercises.outbox.rules import (
    ACKNOWLEDGED,
    ELSEWHERE,
    NO_PUBLISH,
    OUTBOX,
    RULES,
    SALE,
    STATUS_EVENT,
    STEPS,
)
from flashsale.lab.exercises.processes import pack

if TYPE_CHECKING:
    from flashsale.stack.control import Stack

__all__ = ["OUTBOX", "RULES", "STATUS_EVENT", "STEPS", "check", "create_outbox", "pending_orders", "same_transaction",
           "two_statements"]


def two_statements(conn, order_id: str, status: str, reason: str | None = None) -> bool:
    """The obvious set_status, and the subject of the notebook's prediction: the update, then the event's row, each
    statement committed on its own."""
    row = conn.execute("UPDATE orders SET status = %s, reason = %s, updated_at = now() "
                       "WHERE order_id = %s AND status = 'PENDING' RETURNING order_id, user_id, product_id, quantity, "
                       "sale_id", (status, reason, order_id)).fetchone()
    if row is None:
        return False
    event = ev.Event(type=STATUS_EVENT[status], orderId=row[0], userId=row[1], productId=row[2], quantity=row[3],
                     saleId=row[4], reason=reason)
    conn.execute("INSERT INTO outbox (topic, key, payload) VALUES (%s, %s, %s)",
                 (event.topic, event.key, event.to_json().decode()))
    return True


def create_outbox(stack: "Stack") -> str:
    with postgres.connect(stack.wired().database_url) as conn:
        conn.execute(OUTBOX)
    return "the outbox table is ready"


def pending_orders(conn, run: str, n: int, sale_id: int = SALE) -> list[str]:
    """`n` PENDING orders of sale `sale_id`, of one to three phones, as the order service would have recorded them."""
    ids = [f"ex14-{run}-{i:04d}" for i in range(n)]
    conn.execute("INSERT INTO orders (order_id, sale_id, user_id, product_id, quantity, status) "
                 "SELECT id, %s, 'buyer-' || id, 'FLASH_SALE_PRODUCT_001', 1 + ord %% 3, 'PENDING' "
                 "FROM unnest(%s::text[]) WITH ORDINALITY AS o(id, ord) ON CONFLICT (order_id) DO NOTHING",
                 (sale_id, ids))
    return ids


def check(stack: "Stack", set_status, relay_once, orders: int = 300, limit: int = 50) -> None:
    settings, run = stack.wired(), run_id()
    create_topic(settings, ELSEWHERE)
    since = {topic: ends(settings, topic) for topic in (ev.ORDER_EVENTS, ELSEWHERE)}
    with postgres.connect(settings.database_url) as conn:
        conn.execute(OUTBOX)
        set_aside(conn)
        ids = pending_orders(conn, run, orders + 4)
        with step("A", STEPS["A"]):
            same_transaction(conn, set_status, ids[-4:])
        with step("B", STEPS["B"]):
            written = state_changes(conn, set_status, ids[:orders], limit)
            expect(not published_keys(settings, run, since[ev.ORDER_EVENTS]), "set_status published to the broker "
                   "itself: that is the dual write the outbox replaces. Only the relay publishes", NO_PUBLISH)
        with step("C", STEPS["C"]):
            relay_one(settings, conn, relay_once, written)
        with step("D", STEPS["D"]):
            unanswered(stack, conn, relay_once, limit)
    with step("E", STEPS["E"]):
        two_relays(settings, relay_once, limit, written, run)
    with step("F", STEPS["F"]):
        packed = pack(relay_once, "relay", ACKNOWLEDGED)
        for crash in ("before_flush", "after_flush", "after_commit"):
            killed(settings, packed, limit, crash)
    with step("G", STEPS["G"]):
        drain(settings, relay_once, limit, orders)
        published = read_back(settings, run, since, written)
        twice = sum(n > 1 for n in published.values())
        expect(twice <= 2 * limit, f"{twice} events were published more than once: at least once allows duplicates "
               f"only for the batches in flight at a crash (here at most {2 * limit}); mark each row sent once the "
               "broker has it", ACKNOWLEDGED)
        print(f"  all {len(written)} events reached their topics; {twice} twice, from the batches in flight at the "
              "crashes")
    print("All checks passed: the state change and its event commit together; the relay delivers at least once, in "
          "order.")

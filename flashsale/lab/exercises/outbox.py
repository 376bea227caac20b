"""Exercise 14: a transactional outbox for order status events, and its relay.

The learner writes `set_status(conn, order_id, status, reason) -> bool` (the state change
and its outbox row, in one transaction) and `relay_once(conn, producer, limit) -> int`
(publish at most `limit` unsent rows, wait for the broker, mark them sent). The check
runs them against the real PostgreSQL and broker: it breaks transactions half-way; it
freezes the broker (SIGSTOP) while the relay publishes, so that every message of a batch
fails, as the delivery callback reports; and it kills the relay's process with SIGKILL
twice, once before the broker has the batch and once after it has it but before the rows
are marked. Nothing may be lost; duplicates are allowed only for a batch in flight at a
crash (at least once).
"""
import json
import os
import signal
import subprocess
import sys

import cloudpickle
import psycopg
from confluent_kafka import Producer
from psycopg import sql

from flashsale import events as ev
from flashsale.adapters import postgres
from flashsale.lab.exercises import Wrong, expect, passed, run_id, short
from flashsale.lab.replay import read_topic
from flashsale.stack.control import Stack

OUTBOX = """
CREATE TABLE IF NOT EXISTS outbox (
    id         bigserial PRIMARY KEY,       -- publish in this order
    topic      text NOT NULL,
    key        text NOT NULL,               -- the orderId: all events of an order on one partition
    payload    text NOT NULL,               -- the event's JSON, exactly as it will go on the wire
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz                  -- NULL until the broker has acknowledged it
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
"""
SALE = 2**31 - 14  # the check's orders belong to a sale of their own: they count in no real sale's figures
STATUS_EVENT = {"CONFIRMED": ev.ORDER_CONFIRMED, "CANCELLED": ev.ORDER_CANCELLED}
UNANSWERED_MS = 2000  # how long the relay's producer waits for a frozen broker before it reports a failure


def create_outbox(stack: Stack) -> str:
    with postgres.connect(stack.wired().database_url) as conn:
        conn.execute(OUTBOX)
    return "the outbox table is ready"


def pending_orders(conn, run: str, n: int, sale_id: int = SALE) -> list[str]:
    """`n` PENDING orders of sale `sale_id`, as the order service would have recorded them."""
    ids = [f"ex14-{run}-{i:04d}" for i in range(n)]
    conn.execute("INSERT INTO orders (order_id, sale_id, user_id, product_id, quantity, status) "
                 "SELECT id, %s, 'buyer-' || id, 'FLASH_SALE_PRODUCT_001', 1, 'PENDING' FROM unnest(%s::text[]) id "
                 "ON CONFLICT (order_id) DO NOTHING",
                 (sale_id, ids))
    return ids


def check(stack: Stack, set_status, relay_once, orders: int = 300, limit: int = 50) -> None:
    settings, run = stack.wired(), run_id()
    sale_id = SALE
    with postgres.connect(settings.database_url) as conn:
        conn.execute(OUTBOX)
        ids = pending_orders(conn, run, orders + 3, sale_id)
        same_transaction(conn, set_status, ids[-3:])
        for i, order_id in enumerate(ids[:orders]):
            expect(set_status(conn, order_id, "CONFIRMED" if i % 3 else "CANCELLED", None if i % 3 else "SOLD_OUT")
                   is True, "set_status must return True when it moved the order")
        expect(set_status(conn, ids[0], "CONFIRMED", None) is False and _outbox(conn, ids[0]) == 1,
               "set_status on an order already decided must change nothing, write no outbox row, and return False")
        rows = {key: payload for key, payload in conn.execute(
            "SELECT key, payload FROM outbox WHERE key LIKE %s", (f"ex14-{run}-%",)).fetchall()}
    expect(len(rows) == orders, f"{orders} state changes must write {orders} outbox rows; there are {len(rows)}")
    for i, order_id in enumerate(ids[:orders]):
        event = _event(rows[order_id], f"the outbox row of {order_id}")
        wanted = STATUS_EVENT["CONFIRMED" if i % 3 else "CANCELLED"]
        expect(event.type == wanted and event.orderId == order_id and event.saleId == sale_id,
               f"the outbox row of {order_id} must hold its {wanted} event (with the order's saleId, userId, ...); "
               f"it holds {event.type} for {event.orderId}")
    expect(not _published(settings, run), "set_status published to the broker itself: that is the dual write the "
           "outbox replaces. Only the relay publishes")
    passed(f"{orders} state changes, each with exactly one outbox row, in the same transaction; nothing published yet")

    with postgres.connect(settings.database_url) as conn:
        sent = relay_once(conn, _producer(settings), limit=1)  # a first call here: a mistake shows its traceback
        expect(sent == 1, f"relay_once(conn, producer, limit=1) must publish 1 row and return 1; it returned {sent!r}")
        unanswered(stack, conn, relay_once, limit)
    for crash in ("before_flush", "after_flush"):
        code, error = _relay_process(settings, relay_once, limit, crash)
        expect(error is None, f"your relay failed in the relay's process:\n{error}")
        expect(code == -signal.SIGKILL, "the relay finished without ever waiting for the broker twice, so the "
               "crash never happened: relay_once must publish at most `limit` rows per call and wait for the "
               "broker's acknowledgement (producer.flush()) before it marks them sent")
    passed("the relay was killed (SIGKILL) twice: once before the broker had its batch, once after")

    with postgres.connect(settings.database_url) as conn:
        producer, calls = _producer(settings), 0
        while sent := relay_once(conn, producer, limit=limit):
            calls += 1
            expect(sent <= limit, f"relay_once(..., limit={limit}) published {sent} rows: at most `limit` per call")
            expect(calls <= 2 * orders // limit + 2, "relay_once keeps publishing: it must mark what it sent")
        unsent = _unsent(conn, f"ex14-{run}-")
    expect(unsent == 0, f"{unsent} rows are still unsent after relay_once returned 0")
    published = _published(settings, run, expected=orders)
    lost = [order_id for order_id in ids[:orders] if order_id not in published]
    expect(not lost, f"{len(lost)} events were lost ({short(lost)}): their rows were marked sent but the broker never "
           "had them. Mark a row sent only after the broker has acknowledged it (flush, and check for errors)")
    twice = {k: n for k, n in published.items() if n > 1}
    expect(len(twice) <= 2 * limit, f"{len(twice)} events were published more than once: at least once allows "
           f"duplicates only for the batch in flight at a crash (here at most {2 * limit})")
    passed(f"all {orders} events reached {ev.ORDER_EVENTS}; {len(twice)} twice, all from a batch in flight at a crash")
    print("All checks passed: the state change and its event commit together; the relay delivers at least once.")


def unanswered(stack: Stack, conn, relay_once, limit: int) -> None:
    """The broker stops answering (frozen, as in a long GC pause or a network partition) while the relay publishes:
    every message of the batch fails, reported through the delivery callback, and no row may be marked sent (of
    this run or, left by an earlier one, of any other: the relay takes the oldest first)."""
    unsent = _unsent(conn)
    producer = WatchedProducer({**_config(stack.wired().kafka_bootstrap_servers), "linger.ms": 5,
                                "message.timeout.ms": UNANSWERED_MS})
    with stack.frozen("kafka"):
        try:
            said = f"returned {relay_once(conn, producer, limit=limit)!r}"
        except Exception as error:  # noqa: BLE001  (the relay's own "the broker did not take the batch" is right)
            said = f"raised {type(error).__name__}: {error}"
    marked = unsent - _unsent(conn)
    why = f" ({producer.failures[0]})" if producer.failures else ""
    expect(marked == 0, f"the broker stopped answering for a while, and every message of the batch failed{why}; yet "
           f"your relay marked {marked} rows sent, so those events are lost. Mark rows sent only once the broker has "
           "acknowledged them: flush() returns how many messages are still waiting, not how many failed, and a "
           "failure is reported only to the delivery callback (on_delivery). Raise if it reported one")
    passed(f"the broker stopped answering for {UNANSWERED_MS / 1000:g} s: {len(producer.failures)} messages failed, "
           f"no row was marked sent (your relay {said})")


class WatchedProducer(Producer):
    """A real producer that also notes, for the check's report, each delivery failure it tells the relay about."""

    def __init__(self, config: dict):
        super().__init__(config)
        self.failures: list[str] = []

    def produce(self, *args, on_delivery=None, callback=None, **kwargs):
        told = on_delivery or callback

        def report(error, message):
            if error is not None:
                self.failures.append(error.str())
            if told is not None:
                told(error, message)
        return super().produce(*args, on_delivery=report, **kwargs)  # type: ignore[misc]  # a subclass's hook


def _unsent(conn, key_prefix: str = "") -> int:
    return postgres.scalar(conn, "SELECT count(*) FROM outbox WHERE key LIKE %s AND sent_at IS NULL",
                           (f"{key_prefix}%",))


def same_transaction(conn, set_status, ids: list[str]) -> None:
    """A state change whose transaction is rolled back, or fails half-way, must leave neither of its two writes."""
    class Rollback(Exception):
        pass

    try:
        with conn.transaction():
            set_status(conn, ids[0], "CONFIRMED", None)
            raise Rollback
    except Rollback:
        pass
    expect(_status(conn, ids[0]) == "PENDING" and not _outbox(conn, ids[0]), "a rolled-back state change left "
           f"{'its outbox row' if _outbox(conn, ids[0]) else 'the status changed'} behind: write both on the "
           "connection you are given, in one transaction (with conn.transaction(): ...)")
    for order_id, table in ((ids[1], "outbox"), (ids[2], "orders")):
        _fail_writes(conn, table, order_id)
        try:
            set_status(conn, order_id, "CONFIRMED", None)
        except psycopg.Error:
            pass  # the write we broke failed, as it should; any other error is the learner's, and shows
        finally:
            conn.execute(sql.SQL("DROP TRIGGER IF EXISTS exercise14_fail ON {}").format(sql.Identifier(table)))
        moved, told = _status(conn, order_id) != "PENDING", _outbox(conn, order_id)
        half = ("the order is CONFIRMED but no event about it will ever be published" if moved and not told else
                "an event will be published about a change that never happened" if told and not moved else "")
        expect(not half, f"when the {table} write failed, {half}: the state change and its outbox row must commit "
               "together or not at all (one transaction)")
    passed("a failed or rolled-back state change leaves neither the new status nor an outbox row")


def _fail_writes(conn, table: str, order_id: str) -> None:
    """Make every write of `order_id`'s row in `table` fail. DDL takes no %s parameters: names and values go in
    through psycopg.sql, quoted as what they are (an identifier, a literal), never pasted into the text."""
    column = "key" if table == "outbox" else "order_id"
    conn.execute("CREATE OR REPLACE FUNCTION exercise14_fail() RETURNS trigger LANGUAGE plpgsql AS "
                 "$$ BEGIN RAISE EXCEPTION 'the disk is full (a failure injected by the check)'; END $$")
    trigger = sql.SQL("CREATE TRIGGER exercise14_fail BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW "
                      "WHEN (NEW.{column} = {order_id}) EXECUTE FUNCTION exercise14_fail()")
    conn.execute(trigger.format(table=sql.Identifier(table), column=sql.Identifier(column),
                                order_id=sql.Literal(order_id)))


def _status(conn, order_id: str) -> str:
    return conn.execute("SELECT status FROM orders WHERE order_id = %s", (order_id,)).fetchone()[0]


def _outbox(conn, order_id: str) -> int:
    return conn.execute("SELECT count(*) FROM outbox WHERE key = %s", (order_id,)).fetchone()[0]


def _event(payload, what: str) -> ev.Event:
    try:
        return ev.Event.model_validate_json(payload if isinstance(payload, (str, bytes)) else json.dumps(payload))
    except ValueError as error:
        raise Wrong(f"{what} is not an event's JSON ({str(error).splitlines()[0]}): store event.to_json().decode()") \
            from None


def _published(settings, run: str, expected: int = 0) -> dict[str, int]:
    """How often each of this run's orders is on the topic (read again if some seem missing: tansu's ends run short)."""
    for _ in range(3):
        counts: dict[str, int] = {}
        for m in read_topic(settings, ev.ORDER_EVENTS):
            key = (m.key() or b"").decode()
            if key.startswith(f"ex14-{run}-"):
                counts[key] = counts.get(key, 0) + 1
        if len(counts) >= expected:
            break
    return counts


class CrashingProducer(Producer):
    """A real producer whose process dies (SIGKILL) at its second flush, before or after the broker has the batch."""

    def __init__(self, config: dict, crash: str, limit: int):
        super().__init__(config)
        self.crash, self.limit, self.flushes, self.unflushed = crash, limit, 0, 0

    def produce(self, *args, **kwargs):
        self.unflushed += 1
        if self.unflushed > 1.5 * self.limit:  # a relay that never waits dies here, its messages still in memory
            os.kill(os.getpid(), signal.SIGKILL)
        return super().produce(*args, **kwargs)

    def flush(self, *args, **kwargs):
        self.flushes, self.unflushed = self.flushes + 1, 0
        if self.crash == "before_flush" and self.flushes == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        left = super().flush(*args, **kwargs)
        if self.crash == "after_flush" and self.flushes == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return left


def _config(bootstrap: str) -> dict:
    # linger.ms: a message waits in memory until flush() sends it, so a crash before the flush loses it.
    return {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 60000,
            "queue.buffering.max.messages": 100000}


def _producer(settings) -> Producer:
    return Producer(_config(settings.kafka_bootstrap_servers))


def _relay_process(settings, relay_once, limit: int, crash: str) -> tuple[int, str | None]:
    """Run the relay in a process of its own until it is killed: a fresh interpreter, given the learner's
    function by value (cloudpickle: it was defined in a notebook), never a fork of a kernel full of threads."""
    payload = cloudpickle.dumps((relay_once, settings.database_url, settings.kafka_bootstrap_servers, limit, crash))
    child = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    try:
        _, errors = child.communicate(payload, timeout=120)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return child.returncode, "the relay did not finish within 2 minutes"
    text = errors.decode(errors="replace").strip()
    if child.returncode not in (0, -signal.SIGKILL):
        return child.returncode, text[-3000:] or f"the relay's process died with code {child.returncode}"
    return child.returncode, None


def _relay_until_killed() -> None:
    """The relay's process: relay until nothing is left, or until the crashing producer kills it."""
    relay_once, database_url, bootstrap, limit, crash = cloudpickle.loads(sys.stdin.buffer.read())
    with postgres.connect(database_url) as conn:
        producer = CrashingProducer(_config(bootstrap), crash, limit)
        while relay_once(conn, producer, limit=limit):
            pass


if __name__ == "__main__":
    _relay_until_killed()

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
import json
import queue
import signal
import time
from typing import TYPE_CHECKING

import psycopg
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from psycopg import sql

from flashsale import events as ev
from flashsale.adapters import postgres
from flashsale.lab.exercises import Rule, Wrong, expect, run_id, short, step
from flashsale.lab.exercises.log import ends, read_since
from flashsale.lab.exercises.processes import SPAWN, ChildFailed, die, failure, pack, start, unpack
from flashsale.settings import Settings

if TYPE_CHECKING:
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
ELSEWHERE = "exercise14.elsewhere"  # a topic of the check's own: a row may name any topic, and goes there
UNANSWERED_MS = 2000  # how long the relay's producer waits for a frozen broker before it reports a failure
RULES = (
    Rule(1, "`set_status` writes the status change and its outbox row in one transaction, on the `conn` it is given: "
            "both commit, or neither does."),
    Rule(2, "The outbox row holds the event that announces the change: `order.confirmed` or `order.cancelled`, with "
            "the order's own `orderId`, `userId`, `productId`, `quantity` and `saleId`, and the `reason`; its `topic` "
            "is `event.topic`, its `key` is `event.key`, its `payload` is `event.to_json().decode()`."),
    Rule(3, "Only a `PENDING` order moves, and then `set_status` returns `True`; for any other it changes nothing, "
            "writes no row, and returns `False`."),
    Rule(4, "`set_status` publishes nothing: only the relay publishes."),
    Rule(5, "`relay_once` publishes at most `limit` unsent rows, oldest first, each with its row's topic, key and "
            "payload, and returns how many it published (0 when there were none)."),
    Rule(6, "It marks a row sent only once the broker has acknowledged its event: killed, or failed by the broker, "
            "at any moment, the relay loses nothing."),
    Rule(7, "Two relays may run at once: they never both publish a row, and the events of one order reach the broker "
            "in the order they were written."),
)
TOGETHER, THE_EVENT, ONLY_PENDING, NO_PUBLISH, RELAYS, ACKNOWLEDGED, IN_ORDER = RULES
STEPS = {
    "A": "state changes that fail half-way, or roll back",
    "B": "300 orders of one to three phones change state, both ways; then each of two again, the other way",
    "C": "the relay once, for the three oldest rows (one of them for another topic)",
    "D": "the broker stops answering while the relay publishes",
    "E": "two relays at once, each in a process of its own",
    "F": "the relay killed (SIGKILL) in its own process: before its second flush, after it, after its first commit",
    "G": "a last relay until nothing is left; the topic read back",
}


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
    _create_topic(settings, ELSEWHERE)
    since = {topic: ends(settings, topic) for topic in (ev.ORDER_EVENTS, ELSEWHERE)}
    with postgres.connect(settings.database_url) as conn:
        conn.execute(OUTBOX)
        set_aside(conn)
        ids = pending_orders(conn, run, orders + 4)
        with step("A", STEPS["A"]):
            same_transaction(conn, set_status, ids[-4:])
        with step("B", STEPS["B"]):
            written = state_changes(conn, set_status, ids[:orders], limit)
            expect(not _published(settings, run, since[ev.ORDER_EVENTS]), "set_status published to the broker itself: "
                   "that is the dual write the outbox replaces. Only the relay publishes", NO_PUBLISH)
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
        expect(_status(conn, order_id) == "PENDING" and not _outbox(conn, order_id), f"a state change to {status} "
               "rolled back by its caller left "
               f"{'its outbox row' if _outbox(conn, order_id) else 'the status changed'} behind: write both on the "
               "connection you are given, in one transaction (with conn.transaction(): ...)", TOGETHER)
    for order_id, table in ((ids[2], "outbox"), (ids[3], "orders")):
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
               "together or not at all (one transaction)", TOGETHER)
    # Both rolled back or failed: each can still move, and then writes its row (as when the batch comes again).
    for order_id, status in ((ids[0], "CONFIRMED"), (ids[1], "CANCELLED")):
        expect(set_status(conn, order_id, status, None if status == "CONFIRMED" else "SOLD_OUT") is True
               and _status(conn, order_id) == status and _outbox(conn, order_id) == 1,
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
        rows = _outbox(conn, order_id)
        said = set_status(conn, order_id, status, "SOLD_OUT" if status == "CANCELLED" else None)
        expect(said is False and _status(conn, order_id) == was and _outbox(conn, order_id) == rows,
               f"set_status({order_id!r}, {status!r}) on an order already {was} must change nothing, write no outbox "
               f"row, and return False; it returned {said!r}, the order is {_status(conn, order_id)} and it has "
               f"{_outbox(conn, order_id) - rows} more rows", ONLY_PENDING)
    changes = conn.execute("SELECT topic, key, payload FROM outbox WHERE key = ANY(%s) ORDER BY id OFFSET %s",
                           (ids, earlier + 1)).fetchall()
    expect(len(changes) == len(ids), f"{len(ids)} state changes must write {len(ids)} outbox rows; there are "
           f"{len(changes)}", THE_EVENT)
    by_key = {key: (topic, payload) for topic, key, payload in changes}
    for i, order_id in enumerate(ids):
        expect(order_id in by_key, f"no outbox row has the key {order_id!r}: the key is the orderId (event.key), "
               "so that all events of an order land on one partition, in order", THE_EVENT)
        topic, payload = by_key[order_id]
        event = _event(payload, f"the outbox row of {order_id}")
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


def relay_one(settings: Settings, conn, relay_once, written: list[tuple[str, str, str]], n: int = 3) -> None:
    """The first call, here in the kernel (a mistake shows its traceback): the `n` oldest rows, each on the broker as
    its row says (one of them for a topic of the check's own)."""
    oldest = written[:n]
    since = {topic: ends(settings, topic) for topic in (ev.ORDER_EVENTS, ELSEWHERE)}
    sent = relay_once(conn, _producer(settings), limit=n)
    expect(sent == n, f"relay_once(conn, producer, limit={n}) with rows to send must publish {n} rows and return {n}; "
           f"it returned {sent!r}", RELAYS)
    marked = conn.execute("SELECT topic, key, payload FROM outbox WHERE sent_at IS NOT NULL AND key LIKE %s "
                          "ORDER BY id", (written[0][1].rsplit("-", 1)[0] + "-%",)).fetchall()
    expect([tuple(r) for r in marked] == oldest, f"relay_once(..., limit={n}) must take the {n} oldest unsent rows "
           f"(ORDER BY id): {short(k for _, k, _ in oldest)}; it marked {short(k for _, k, _ in marked)}", RELAYS)
    on = {topic: {(m.value() or b"").decode(): m for m in read_since(settings, topic, since[topic])} for topic in since}
    for topic, key, payload in oldest:
        there = [t for t in on if payload in on[t]]
        expect(there, f"relay_once marked the row of {key} sent, but the broker does not have its event: "
               "producer.produce() only queues a message in memory; wait for the broker (flush) before you mark it",
               ACKNOWLEDGED)
        message = on[there[0]][payload]
        expect(there[0] == topic and (message.key() or b"").decode() == key, f"the row of {key} for {topic} was "
               f"published to {there[0]} with the key {message.key()!r}: publish each row to its own topic, with its "
               "key, as it is", RELAYS)


def unanswered(stack: "Stack", conn, relay_once, limit: int) -> None:
    """The broker stops answering (frozen, as in a long GC pause or a network partition) while the relay publishes:
    every message of the batch fails, reported through the delivery callback, and no row may be marked sent."""
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
           "failure is reported only to the delivery callback (on_delivery). Raise if it reported one", ACKNOWLEDGED)
    print(f"  the broker stopped answering for {UNANSWERED_MS / 1000:g} s: {len(producer.failures)} messages failed, "
          f"no row was marked sent (your relay {said})")


def two_relays(settings: Settings, relay_once, limit: int, written: list[tuple[str, str, str]], run: str) -> None:
    """The first relay is held inside its flush (its batch taken, not yet marked) while the second runs, until the
    second has finished or waits for the first's locks; then the first goes on. The events of the orders whose two
    events fell in the two batches must still come in order, and no row from both."""
    packed = pack(relay_once, "relay", IN_ORDER)
    since = ends(settings, ev.ORDER_EVENTS)
    held, go, started, results = SPAWN.Event(), SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    first = start(_relay, packed, settings.database_url, settings.kafka_bootstrap_servers, limit, "held",
                  f"exercise14-{run}-first", (held, go), results, name="exercise14-relay-first")
    second = None
    try:
        _until(lambda: held.is_set() or not first.is_alive(), 180)
        if not held.is_set() and not first.is_alive():
            said = _results(results, 1, (first,))  # its error, if it failed, shows as it is
            raise Wrong(f"the first relay returned ({said}) without ever waiting for the broker (producer.flush()): "
                        "wait for its acknowledgement before you mark the rows", ACKNOWLEDGED)
        expect(held.is_set(), "the first relay did not publish its batch within 3 minutes")
        name = f"exercise14-{run}-second"
        second = start(_relay, packed, settings.database_url, settings.kafka_bootstrap_servers, limit, "once", name,
                       (started,), results, name="exercise14-relay-second")
        _until(lambda: started.is_set() or not second.is_alive(), 180)  # however long it takes to start
        with postgres.connect(settings.database_url) as watcher:
            _until(lambda: not second.is_alive() or _waits_for_a_lock(watcher, name), 30)
        go.set()
        said = _results(results, 2, (first, second))
    finally:
        go.set()
        for process in (first, second):
            if process is not None:
                process.join(15)
                if process.is_alive():
                    process.kill()
    rows = {payload: (i, key) for i, (_, key, payload) in enumerate(written)}
    log: dict[str, list[int]] = {}
    for m in read_since(settings, ev.ORDER_EVENTS, since):
        value = (m.value() or b"").decode()
        if value in rows:
            log.setdefault(rows[value][1], []).append(rows[value][0])
    both = {key: rows for key, rows in log.items() if len(rows) != len(set(rows))}
    expect(not both, f"two relays at once published the same rows, each once ({short(both)}; {said}): lock the rows "
           "you take (SELECT ... FOR UPDATE), in the transaction that marks them, so that a second relay waits "
           "instead of taking them too", IN_ORDER)
    late = {key: rows for key, rows in log.items() if rows != sorted(rows)}
    expect(not late, f"two relays at once published events of one order out of order ({short(late)}: the "
           f"outbox rows, in the order they reached the broker; {said}): the second relay skipped the rows the first "
           "had locked and published what comes after them. Let it wait for them (FOR UPDATE, not SKIP LOCKED)",
           IN_ORDER)
    print(f"  two relays at once: {said}; every row once, each order's events in order")


def killed(settings: Settings, packed: bytes, limit: int, crash: str) -> None:
    results = SPAWN.Queue()
    process = start(_relay, packed, settings.database_url, settings.kafka_bootstrap_servers, limit, crash, "", None,
                    results, name=f"exercise14-relay-{crash}")
    process.join(300)
    if process.is_alive():
        process.kill()
        raise Wrong("the relay did not finish within 5 minutes, nor reach the point where the check kills it")
    if process.exitcode != -signal.SIGKILL:
        said = _results(results, 1, (process,))
        raise Wrong(f"the relay finished ({said}) without reaching the point where the check kills it ({crash}): "
                    "relay_once must publish at most `limit` rows per call, wait for the broker's acknowledgement "
                    "(producer.flush()), and only then mark them sent, in a transaction that commits",
                    ACKNOWLEDGED)


def drain(settings: Settings, relay_once, limit: int, orders: int) -> None:
    with postgres.connect(settings.database_url) as conn:
        producer, calls = _producer(settings), 0
        while sent := relay_once(conn, producer, limit=limit):
            calls += 1
            expect(sent <= limit, f"relay_once(..., limit={limit}) published {sent} rows: at most `limit` per call",
                   RELAYS)
            expect(calls <= 2 * orders // limit + 2, "relay_once keeps publishing: it must mark what it sent",
                   ACKNOWLEDGED)
        unsent = _unsent(conn)
    expect(unsent == 0, f"{unsent} rows are still unsent after relay_once returned 0: return 0 only when there is "
           "nothing left", RELAYS)


def read_back(settings: Settings, run: str, since: dict, written: list[tuple[str, str, str]]) -> dict[str, int]:
    """How often each of this run's rows is on its topic; that none is lost, each as its row says, and in order."""
    rows = {(topic, payload): (i, key) for i, (topic, key, payload) in enumerate(written)}
    counts: dict[tuple[str, str], int] = {}
    first: dict[str, list[int]] = {}
    for topic in since:
        for m in read_since(settings, topic, since[topic]):
            key, value = (m.key() or b"").decode(), (m.value() or b"").decode()
            if not key.startswith(f"ex14-{run}-"):
                continue
            expect((topic, value) in rows and rows[topic, value][1] == key, f"the relay published {value[:80]!r} "
                   f"to {topic} with the key {key!r}: publish each row's payload as it is, to its topic, with its key",
                   RELAYS)
            counts[topic, value] = counts.get((topic, value), 0) + 1
            if counts[topic, value] == 1 and topic == ev.ORDER_EVENTS:
                first.setdefault(key, []).append(rows[topic, value][0])
    lost = [key for topic, key, payload in written if (topic, payload) not in counts]
    expect(not lost, f"{len(lost)} events were lost ({short(lost)}): their rows were marked sent but the broker "
           "never had them. Mark a row sent only after the broker has acknowledged it (flush, and check the delivery "
           "reports)", ACKNOWLEDGED)
    late = {key: rows for key, rows in first.items() if rows != sorted(rows)}
    expect(not late, f"the events of {len(late)} orders reached the broker out of order ({short(late)}): publish the "
           "oldest rows first, one relay at a time", IN_ORDER)
    return {f"{topic} {payload}": n for (topic, payload), n in counts.items()}


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


class CrashingProducer(Producer):
    """A real producer whose process dies (SIGKILL) at its second flush, before or after the broker has the batch."""

    def __init__(self, config: dict, crash: str, limit: int):
        super().__init__(config)
        self.crash, self.limit, self.flushes, self.unflushed = crash, limit, 0, 0

    def produce(self, *args, **kwargs):
        self.unflushed += 1
        if self.unflushed > 1.5 * self.limit:  # a relay that never waits dies here, its messages still in memory
            die()
        return super().produce(*args, **kwargs)

    def flush(self, *args, **kwargs):
        self.flushes, self.unflushed = self.flushes + 1, 0
        if self.crash == "before_flush" and self.flushes == 2:
            die()
        left = super().flush(*args, **kwargs)
        if self.crash == "after_flush" and self.flushes == 2:
            die()
        return left


class HeldProducer(Producer):
    """A real producer that, at its first flush, says so and waits for the check's word before it flushes."""

    def __init__(self, config: dict, held, go):
        super().__init__(config)
        self.held, self.go = held, go

    def flush(self, *args, **kwargs):
        if not self.held.is_set():
            self.held.set()
            self.go.wait(600)  # the check says go however its steps end; the wait only bounds a check gone wrong
        return super().flush(*args, **kwargs)


def _relay(packed: bytes, database_url: str, bootstrap: str, limit: int, mode: str, name: str, signals,
           results) -> None:
    """A relay's process. `mode`: "held" (one call, held in its flush), "once" (one call), or a crash point:
    relay until nothing is left, or until the crash."""
    relay_once = unpack(packed)
    try:
        with postgres.connect(database_url, application_name=name or "exercise14-relay") as conn:
            if mode == "held":
                results.put(("sent", mode, relay_once(conn, HeldProducer(_config(bootstrap), *signals), limit=limit)))
                return
            if mode == "once":
                producer = Producer(_config(bootstrap))
                signals[0].set()  # about to take its rows
                try:
                    results.put(("sent", mode, relay_once(conn, producer, limit=limit)))
                except psycopg.errors.LockNotAvailable:  # FOR UPDATE NOWAIT: a relay may give way to the other
                    results.put(("sent", mode, "nothing (the rows were locked: NOWAIT)"))
                return
            producer = CrashingProducer(_config(bootstrap), mode, limit)
            while sent := relay_once(conn, producer, limit=limit):
                if mode == "after_commit":
                    die()  # after its first call returned: its transaction committed
            results.put(("sent", mode, sent))
    except BaseException:  # noqa: BLE001  (the learner's, reported to the check as text)
        results.put(("error", mode, failure()))


def _results(results, n: int, processes) -> str:
    said = []
    for _ in range(n):
        try:
            kind, mode, what = results.get(timeout=60)
        except queue.Empty:
            raise Wrong(f"a relay did not finish within a minute ({[p.exitcode for p in processes]})") from None
        if kind == "error":
            raise ChildFailed(f"your relay raised in the relay's process ({mode}):\n{what}")
        said.append(f"the {'first' if mode == 'held' else 'second' if mode == 'once' else mode} sent {what!r}")
    return ", ".join(said)


def _until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def _waits_for_a_lock(watcher, name: str) -> bool:
    return watcher.execute("SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = %s "
                           "AND wait_event_type = 'Lock'", (name,)).fetchone()[0] is True


def _unsent(conn) -> int:
    return postgres.scalar(conn, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")


def _fail_writes(conn, table: str, order_id: str) -> None:
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


def _status(conn, order_id: str) -> str:
    return conn.execute("SELECT status FROM orders WHERE order_id = %s", (order_id,)).fetchone()[0]


def _outbox(conn, order_id: str) -> int:
    """The outbox rows about an order: keyed by it, or (a wrong key) holding it in their event."""
    return conn.execute("SELECT count(*) FROM outbox WHERE key = %s OR position(%s in payload) > 0",
                        (order_id, f'"orderId":"{order_id}"')).fetchone()[0]


def _event(payload, what: str) -> ev.Event:
    try:
        return ev.Event.model_validate_json(payload if isinstance(payload, (str, bytes)) else json.dumps(payload))
    except ValueError as error:
        raise Wrong(f"{what} is not an event's JSON ({str(error).splitlines()[0]}): store event.to_json().decode()",
                    THE_EVENT) from None


def _create_topic(settings: Settings, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    if topic not in admin.list_topics(timeout=10).topics:
        for future in admin.create_topics([NewTopic(topic, settings.partitions, 1)]).values():
            future.result(10)


def _published(settings: Settings, run: str, since) -> list[str]:
    return [(m.key() or b"").decode() for m in read_since(settings, ev.ORDER_EVENTS, since)
            if (m.key() or b"").decode().startswith(f"ex14-{run}-")]


def _config(bootstrap: str) -> dict:
    # linger.ms: a message waits in memory until flush() sends it, so a crash before the flush loses it.
    return {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 60000,
            "queue.buffering.max.messages": 100000}


def _producer(settings) -> Producer:
    return Producer(_config(settings.kafka_bootstrap_servers))

"""Exercise 14, steps C to G: the learner's relay, against the real PostgreSQL and broker, and in processes of its own.

Once, here in the kernel, for the oldest rows; with the broker frozen (SIGSTOP) while it publishes; two relays at
once, the first held inside its flush until the second waits for its locks (or is done); killed (SIGKILL) three
times at points the check builds; then until nothing is left, and the topics read back.
"""
import signal
from typing import TYPE_CHECKING

from confluent_kafka.admin import AdminClient, NewTopic

from flashsale import events as ev
from flashsale.adapters import postgres
from flashsale.lab.exercises import Wrong, expect, short
from flashsale.lab.exercises.log import ends, read_since
from flashsale.lab.exercises.outbox.producers import (
    WatchedProducer,
    new_producer,
    producer_config,
    relay_process,
    reported,
)
from flashsale.lab.exercises.outbox.rules import ACKNOWLEDGED, ELSEWHERE, IN_ORDER, RELAYS, UNANSWERED_MS
from flashsale.lab.exercises.processes import SPAWN, pack, start, until, waits_for_a_lock
from flashsale.settings import Settings

if TYPE_CHECKING:
    from flashsale.stack.control import Stack


def relay_one(settings: Settings, conn, relay_once, written: list[tuple[str, str, str]], n: int = 3) -> None:
    """The first call, here in the kernel (a mistake shows its traceback): the `n` oldest rows, each on the broker as
    its row says (one of them for a topic of the check's own)."""
    oldest = written[:n]
    since = {topic: ends(settings, topic) for topic in (ev.ORDER_EVENTS, ELSEWHERE)}
    sent = relay_once(conn, new_producer(settings), limit=n)
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
    unsent = unsent_rows(conn)
    producer = WatchedProducer({**producer_config(stack.wired().kafka_bootstrap_servers), "linger.ms": 5,
                                "message.timeout.ms": UNANSWERED_MS})
    with stack.frozen("kafka"):
        try:
            said = f"returned {relay_once(conn, producer, limit=limit)!r}"
        except Exception as error:  # noqa: BLE001  (the relay's own "the broker did not take the batch" is right)
            said = f"raised {type(error).__name__}: {error}"
    marked = unsent - unsent_rows(conn)
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
    first = start(relay_process, packed, settings.database_url, settings.kafka_bootstrap_servers, limit, "held",
                  f"exercise14-{run}-first", (held, go), results, name="exercise14-relay-first")
    second = None
    try:
        until(lambda: held.is_set() or not first.is_alive(), 180)
        if not held.is_set() and not first.is_alive():
            said = reported(results, 1, (first,))  # its error, if it failed, shows as it is
            raise Wrong(f"the first relay returned ({said}) without ever waiting for the broker (producer.flush()): "
                        "wait for its acknowledgement before you mark the rows", ACKNOWLEDGED)
        expect(held.is_set(), "the first relay did not publish its batch within 3 minutes")
        name = f"exercise14-{run}-second"
        second = start(relay_process, packed, settings.database_url, settings.kafka_bootstrap_servers, limit, "once",
                       name, (started,), results, name="exercise14-relay-second")
        until(lambda: started.is_set() or not second.is_alive(), 180)  # however long it takes to start
        with postgres.connect(settings.database_url) as watcher:
            until(lambda: not second.is_alive() or waits_for_a_lock(watcher, name), 30)
        go.set()
        said = reported(results, 2, (first, second))
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
    process = start(relay_process, packed, settings.database_url, settings.kafka_bootstrap_servers, limit, crash, "",
                    None, results, name=f"exercise14-relay-{crash}")
    process.join(300)
    if process.is_alive():
        process.kill()
        raise Wrong("the relay did not finish within 5 minutes, nor reach the point where the check kills it")
    if process.exitcode != -signal.SIGKILL:
        said = reported(results, 1, (process,))
        raise Wrong(f"the relay finished ({said}) without reaching the point where the check kills it ({crash}): "
                    "relay_once must publish at most `limit` rows per call, wait for the broker's acknowledgement "
                    "(producer.flush()), and only then mark them sent, in a transaction that commits",
                    ACKNOWLEDGED)


def drain(settings: Settings, relay_once, limit: int, orders: int) -> None:
    with postgres.connect(settings.database_url) as conn:
        producer, calls = new_producer(settings), 0
        while sent := relay_once(conn, producer, limit=limit):
            calls += 1
            expect(sent <= limit, f"relay_once(..., limit={limit}) published {sent} rows: at most `limit` per call",
                   RELAYS)
            expect(calls <= 2 * orders // limit + 2, "relay_once keeps publishing: it must mark what it sent",
                   ACKNOWLEDGED)
        unsent = unsent_rows(conn)
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


def unsent_rows(conn) -> int:
    return postgres.scalar(conn, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")


def create_topic(settings: Settings, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    if topic not in admin.list_topics(timeout=10).topics:
        for future in admin.create_topics([NewTopic(topic, settings.partitions, 1)]).values():
            future.result(10)

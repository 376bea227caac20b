"""Replication on three Apache Kafka nodes: who leads each partition, who is in sync, what each `acks` keeps.

    replicas.partitions(stack)          # order.events: each partition's leader, replicas and in-sync replicas
    replicas.leader(stack)              # "kafka-2": the node to kill
    replicas.acks_lost(stack, "1")      # followers frozen, 1,000 writes, the leader killed: how many survive
    replicas.refused(stack)             # a topic that asks for 3 in-sync copies, with one node down

Every partition has one *leader*, which takes its writes, and *followers*, which fetch from the leader as a
consumer would. The replicas that have caught up are *in sync* (the ISR). An acks=all write is answered
when every in-sync replica has it, and refused while fewer than `min.insync.replicas` are in sync; an
acks=1 write is answered as soon as the leader has it.
"""
import time
import uuid
from contextlib import ExitStack

import pandas as pd
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from flashsale import events as ev
from flashsale.adapters import kafka
from flashsale.lab.groups import QUIET
from flashsale.lab.tap import read as read_topic
from flashsale.stack.control import Stack


def read(admin: AdminClient, topics: list[str], timeout: float = 5) -> list[dict]:
    """Each partition of `topics` as the broker's metadata says: leader, replicas, in sync, out of sync."""
    metadata = admin.list_topics(timeout=timeout).topics
    rows = []
    for topic in topics:
        if topic not in metadata or metadata[topic].error:
            continue
        for p in sorted(metadata[topic].partitions.values(), key=lambda p: p.id):
            rows.append({"topic": topic, "partition": p.id, "leader": f"kafka-{p.leader}" if p.leader >= 0 else None,
                         "replicas": sorted(p.replicas), "in sync": sorted(p.isrs),
                         "out of sync": sorted(set(p.replicas) - set(p.isrs))})
    return rows


def line(rows: list[dict]) -> str:
    """One line for the dashboard: `order.events p0: leader kafka-2, in sync 1 2 3 · p1: ...`."""
    said = []
    for row in rows:
        behind = f", out of sync {' '.join(map(str, row['out of sync']))}" if row["out of sync"] else ""
        said.append(f"p{row['partition']}: leader {row['leader'] or 'NONE'}, in sync "
                    f"{' '.join(map(str, row['in sync']))}{behind}")
    return f"{rows[0]['topic']} " + " · ".join(said) if rows else ""


def admin(stack: Stack) -> AdminClient:
    return AdminClient({"bootstrap.servers": stack.wired().kafka_bootstrap_servers, **QUIET})


def partitions(stack: Stack, topic: str = ev.ORDER_EVENTS) -> pd.DataFrame:
    return pd.DataFrame(read(admin(stack), [topic])).set_index(["topic", "partition"])


def leader(stack: Stack, topic: str = ev.ORDER_EVENTS, partition: int = 0) -> str:
    """The node that leads `topic`'s partition now: "kafka-<node id>"."""
    return read(admin(stack), [topic])[partition]["leader"]


def wait(stack: Stack, topic: str, holds, what: str, timeout: float = 60) -> float:
    """Poll `topic` until `holds(row)` for each of its partitions; the seconds it took, or a clear error."""
    started, client = time.monotonic(), admin(stack)
    while time.monotonic() < started + timeout:
        rows = read(client, [topic])
        if rows and all(holds(row) for row in rows):
            return time.monotonic() - started
        time.sleep(0.2)
    raise TimeoutError(f"{topic}: {what} not within {timeout:.0f} s (last: {rows})")


def in_sync(stack: Stack, topic: str = ev.ORDER_EVENTS, timeout: float = 60) -> float:
    """Wait until every replica of every partition of `topic` is in sync again; the seconds it took."""
    return wait(stack, topic, lambda row: row["in sync"] == row["replicas"], "every replica in sync", timeout)


def new_topic(stack: Stack, min_insync: int = 2) -> str:
    """A topic of one partition on all three nodes, for an experiment of its own."""
    topic = f"lab-replicas-{uuid.uuid4().hex[:8]}"
    client = admin(stack)  # held until the answer comes: a client collected meanwhile fails its requests (_DESTROY)
    client.create_topics([NewTopic(topic, 1, 3, config={"min.insync.replicas": str(min_insync)})])[topic].result(15)
    in_sync(stack, topic)
    return topic


FOLLOWER_FETCH_WAIT_S = 0.5  # replica.fetch.wait.max.ms, Kafka's default: stack/apache_kafka.py leaves it alone


def acks_lost(stack: Stack, acks: str, writes: int = 1000) -> dict:
    """Freeze both followers of a new topic, write `writes` numbered events with `acks`, `kill -9` the leader,
    thaw the followers. Then restart the old leader, read the partition back, and count.

    The freeze stands for a follower that fell behind for a moment (a GC pause, a slow disk). It lasts under
    the controllers' 3 s session timeout, so the frozen followers stay members of the ISR and one of them
    becomes the leader: its log is what the partition holds from then on; the restarted old leader truncates
    its own log to match.
    """
    topic = new_topic(stack)
    row = read(admin(stack), [topic])[0]
    victim, followers = row["leader"], [f"kafka-{n}" for n in row["replicas"] if f"kafka-{n}" != row["leader"]]
    producer = Producer({"bootstrap.servers": stack.wired().kafka_bootstrap_servers, "acks": acks,
                         "enable.idempotence": acks == "all", "linger.ms": 5, **QUIET})
    acked: set[int] = set()

    def answered(error: KafkaError | None, message: Message) -> None:
        if error is None:
            acked.add(int(message.key() or b""))

    producer.poll(0)  # the producer knows the leader before the freeze
    producer.produce(topic, key=b"-1", value=b"warm-up")
    kafka.flush(producer, 10, "warm-up message")
    with ExitStack() as frozen:
        for node in followers:
            frozen.enter_context(stack.frozen(node))
        # A follower's fetch that reached the leader before the freeze waits there for data (up to Kafka's
        # `replica.fetch.wait.max.ms`, 500 ms). Written now, the writes would go out in its answer, into the frozen
        # follower's socket, and after the thaw that follower may store them before it learns it leads: 3 of 20
        # runs of lesson 09 lost nothing with acks=1 (measured, 2026-12-07). Once that wait is over, nothing of the
        # writes can reach a follower until the leader is dead.
        time.sleep(FOLLOWER_FETCH_WAIT_S + 0.2)
        for n in range(writes):
            producer.produce(topic, key=str(n).encode(), value=b"x" * 100, on_delivery=answered)
        unanswered = producer.flush(1)  # acks=1: the leader alone answers; acks=all: it waits for the frozen followers
        before_kill = len(acked)
        stack.kill(victim)
    wait(stack, topic, lambda row: row["leader"] not in (None, victim), "a new leader")
    never = producer.flush(30)  # an acks=all producer sends its unanswered writes again, to the new leader
    stack.restart(victim)
    in_sync(stack, topic)  # the old leader is back, its log cut to the new leader's
    stored = {int(m.key() or b"") for m in read_topic(stack.wired().kafka_bootstrap_servers, topic, 1)} - {-1}
    return {"acks": acks, "written": writes, "answered before the kill": before_kill,
            "unanswered at the kill": unanswered, "never answered": never,
            "answered in all": len(acked), "in the log": len(stored), "answered, then lost": len(acked - stored)}


def refused(stack: Stack) -> dict:
    """A topic that asks for three in-sync copies (`min.insync.replicas=3`), with one of its nodes killed:
    what an acks=all write and an acks=1 write get. The node is restarted before this returns."""
    topic = new_topic(stack, min_insync=3)
    row = read(admin(stack), [topic])[0]
    victim = next(f"kafka-{n}" for n in row["replicas"] if f"kafka-{n}" != row["leader"])  # a follower
    stack.kill(victim)
    try:
        wait(stack, topic, lambda row: len(row["in sync"]) == 2, f"{victim} out of the ISR")
        return {acks: _one_write(stack, topic, acks) for acks in ("all", "1")}
    finally:
        stack.restart(victim)


def _one_write(stack: Stack, topic: str, acks: str, attempts: int = 5) -> str:
    """The broker's answer to one write (no retries inside the client, so its first answer is what is shown).

    Measured here: for a moment after the metadata shows the shrunk ISR, the leader may still wait for the dead
    follower, and the write times out instead; the next attempt gets the answer, as a real producer's retry would.
    """
    for _ in range(attempts):
        answered, error = _write(stack, topic, acks)
        if answered and error is None:
            return "stored"
        if error is not None and error.code() not in (KafkaError.REQUEST_TIMED_OUT, KafkaError._MSG_TIMED_OUT):
            return f"refused: {error.name()}"
    raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, f"no answer to {attempts} writes to {topic}"))


def _write(stack: Stack, topic: str, acks: str) -> tuple[bool, KafkaError | None]:
    producer = Producer({"bootstrap.servers": stack.wired().kafka_bootstrap_servers, "acks": acks, "retries": 0,
                         "enable.idempotence": False, "request.timeout.ms": 5000, "message.timeout.ms": 6000,
                         **QUIET})
    answers: list[KafkaError | None] = []
    producer.produce(topic, value=b"one order", on_delivery=lambda error, m: answers.append(error))
    unanswered = producer.flush(10)
    return not unanswered and bool(answers), answers[0] if answers else None

"""What moves when a consumer group or a topic changes: partitions between members, keys between partitions.

    pauses("127.0.0.1:9092")          # how long partitions go unread while a third member joins: KIP-848, classic
    remapped_keys("127.0.0.1:9092")   # where 100 keys go on 3 partitions, then on 4
    steady_buyers(stack, seconds=10)  # a sale that lasts, so that the group can change while orders flow

`pause` writes a steady stream to a scratch topic of 3 partitions (one message to each every 10 ms), lets
two members of a fresh group read it, each in a thread of this process, then starts a third. Every member
notes when each new offset reaches it. A partition's pause is the longest it went without a new message
from the join on; the group's pause, the longest nobody got any. The same measure before the join is the
baseline: what a steady group shows anyway.
"""
import threading
import time
import uuid
from dataclasses import dataclass
from itertools import pairwise

import pandas as pd
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from flashsale.adapters import kafka
from flashsale.brokers import LONG_POLL
from flashsale.harness.load import Race
from flashsale.lab.races import buyers
from flashsale.stack.control import Stack
from flashsale.stack.processes import wait_until

PARTITIONS, EVERY_S, SETTLE_S = 3, 0.01, 4  # SETTLE_S: how long to watch a steady group


@dataclass
class Pause:
    protocol: str
    joined_s: float  # from the third member's start to its first message
    partition_pause_s: float  # the longest a partition went without a new message, from the join on
    group_pause_s: float  # the longest the whole group went without one
    steady_s: float  # the partition measure over as long a stretch before the join
    unread: int  # acknowledged by the broker, never read by any member
    shares: tuple[int, ...]  # partitions each member held at the end: (1, 1, 1) once the third has its share


class Writer(threading.Thread):
    """One message to each partition every EVERY_S until stopped; `acked` keeps the offsets the broker gave them."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True, name="writer")
        self.producer, self.topic = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, **kafka.QUIET}), topic
        self.acked: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
        self.done = threading.Event()
        self.unacknowledged = 0  # ticks the broker had not acknowledged 10 s after the last

    def run(self) -> None:
        while not self.done.is_set():
            for p in range(PARTITIONS):
                self.producer.produce(self.topic, b"tick", partition=p, on_delivery=self._acked)
            self.producer.poll(0)
            time.sleep(EVERY_S)
        self.unacknowledged = self.producer.flush(10)

    def _acked(self, err, msg) -> None:
        if err is None:
            self.acked[msg.partition()].append(msg.offset())

    def stop(self) -> None:
        self.done.set()
        if self.is_alive():
            self.join()


class Member(threading.Thread):
    """A member of the group: reads, commits, notes (time, partition) of every offset that nobody read before."""

    def __init__(self, bootstrap: str, group: str, topic: str, protocol: str, name: str, seen: dict, lock):
        super().__init__(daemon=True, name=name)
        self.config = {"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                       "auto.offset.reset": "earliest", "enable.auto.commit": False,
                       **LONG_POLL, **kafka.GROUP_MEMBER[protocol], **kafka.QUIET}
        self.topic, self.seen, self.lock, self.running, self.share = topic, seen, lock, True, 0
        self.arrivals: list[tuple[float, int]] = []  # (when, partition) of each new offset

    def run(self) -> None:
        consumer = Consumer(self.config)
        consumer.subscribe([self.topic])
        try:
            while self.running:
                messages = [m for m in consumer.consume(100, timeout=0.05) if not m.error()]
                now = time.monotonic()
                with self.lock:
                    for m in messages:
                        partition, offset = m.partition(), m.offset()
                        assert partition is not None and offset is not None  # a message, not an error: it has both
                        if offset > self.seen.get(partition, -1):
                            self.seen[partition] = offset
                            self.arrivals.append((now, partition))
                if messages:
                    consumer.commit(asynchronous=True)
                self.share = len(consumer.assignment())
        finally:
            consumer.close()

    def stop(self) -> None:
        self.running = False
        if self.is_alive():
            self.join()


def pause(bootstrap: str, protocol: str, timeout: float = 30) -> Pause:
    """Two members read a steady stream; a third joins. How long did partitions go unread?"""
    suffix = uuid.uuid4().hex[:8]
    topic, group = f"lab.rebalance.{suffix}", f"lab-rebalance-{protocol}-{suffix}"
    admin = AdminClient({"bootstrap.servers": bootstrap, **kafka.QUIET})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(10)
    seen: dict[int, int] = {}
    lock, writer = threading.Lock(), Writer(bootstrap, topic)
    members = [Member(bootstrap, group, topic, protocol, f"member-{i}", seen, lock) for i in range(3)]
    try:
        for thread in (writer, members[0], members[1]):
            thread.start()
        wait_until(lambda: bool(members[0].arrivals and members[1].arrivals), timeout, "the first two never both read")
        time.sleep(SETTLE_S)  # a steady stretch: the baseline
        joined = time.monotonic()
        members[2].start()
        wait_until(lambda: bool(members[2].arrivals), timeout, "the third member never got a partition")
        time.sleep(SETTLE_S)
        ended = time.monotonic()
        writer.stop()
        if writer.unacknowledged:
            raise KafkaException(f"the broker did not acknowledge {writer.unacknowledged} ticks of {topic}")
        caught_up = time.monotonic() + 10
        while _unread(writer.acked, seen) and time.monotonic() < caught_up:
            time.sleep(0.05)
        shares = tuple(member.share for member in members)
    finally:
        writer.stop()
        for member in members:
            member.stop()
        admin.delete_topics([topic])
    arrivals = sorted(a for member in members for a in member.arrivals)
    return Pause(protocol, joined_s=round(members[2].arrivals[0][0] - joined, 2),
                 partition_pause_s=max(_longest(arrivals, joined, ended, p) for p in range(PARTITIONS)),
                 group_pause_s=_longest(arrivals, joined, ended),
                 steady_s=max(_longest(arrivals, joined - SETTLE_S, joined, p) for p in range(PARTITIONS)),
                 unread=_unread(writer.acked, seen), shares=shares)


def _unread(acked: dict[int, list[int]], seen: dict[int, int]) -> int:
    """Acknowledged offsets past the last one read. A partition is read in order, so nothing before is missing."""
    return sum(offset > seen.get(p, -1) for p, offsets in acked.items() for offset in offsets)


def pauses(bootstrap: str, protocols=("consumer", "classic")) -> pd.DataFrame:
    """`pause` for each protocol, one row each."""
    return pd.DataFrame([pause(bootstrap, protocol) for protocol in protocols]).set_index("protocol")


def _longest(arrivals: list[tuple[float, int]], start: float, end: float, partition: int | None = None) -> float:
    """The longest time between consecutive new messages (of `partition`, or of any) from `start` to `end`."""
    times = [start, *(t for t, p in arrivals if start < t < end and partition in (None, p)), end]
    return round(max(b - a for a, b in pairwise(times)), 2)


def remapped_keys(bootstrap: str, keys: int = 100, before: int = PARTITIONS,
                  after: int = PARTITIONS + 1) -> pd.DataFrame:
    """Send `keys` order ids to a topic of `before` partitions, grow it to `after`, send them again: where each went.

    The producer picks a key's partition from a hash of the key and the partition count (librdkafka's
    default: CRC32 % count), so a new count sends some keys elsewhere. tansu 0.6 cannot grow a topic
    (CreatePartitions: unsupported feature); there a second topic of `after` partitions stands in, which
    the producer treats the same way, since only the count enters the hash.
    """
    admin, topic = AdminClient({"bootstrap.servers": bootstrap}), f"lab.keys.{uuid.uuid4().hex[:8]}"
    names = [f"order-{i:03d}" for i in range(keys)]
    admin.create_topics([NewTopic(topic, before, 1)])[topic].result(10)
    first = _partitions_of(bootstrap, topic, names)
    try:
        admin.create_partitions([NewPartitions(topic, after)])[topic].result(10)
        grown = topic
    except KafkaException as error:
        if error.args[0].code() != KafkaError._UNSUPPORTED_FEATURE:
            raise
        grown = f"{topic}.grown"
        admin.create_topics([NewTopic(grown, after, 1)])[grown].result(10)
    second = _partitions_of(bootstrap, grown, names)  # a new producer: it reads the new count
    admin.delete_topics(list({topic, grown}))
    table = pd.DataFrame({"key": names, "before": [first[k] for k in names], "after": [second[k] for k in names]})
    return table.assign(moved=table.before != table.after).set_index("key")


def _partitions_of(bootstrap: str, topic: str, keys: list[str]) -> dict[str, int]:
    """Produce one message per key as the gateway does; the broker's acknowledgement says which partition."""
    acknowledged = kafka.delivered_to(kafka.reliable_producer(bootstrap), [(topic, b"{}", key) for key in keys])
    return {(m.key() or b"").decode(): int(m.partition() or 0) for m in acknowledged}


def steady_buyers(stack: Stack, seconds: int = 10, per_second: int = 100) -> list[Race]:
    """A sale that lasts: `per_second` new buyers at the gateway at the start of each second, for `seconds`."""
    races, start = [], time.monotonic()
    for second in range(seconds):
        races.append(buyers(stack, "gateway", per_second, first=second * per_second, progress=False))
        time.sleep(max(0.0, start + second + 1 - time.monotonic()))
    return races

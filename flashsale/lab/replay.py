"""Deliver events again: read a topic from its start, send its messages once more, wait for the consumers.

Delivery is at least once, so any event may arrive twice; the contract says a
second delivery, or a replay of a whole topic, changes no state. These helpers
let a notebook or a test try exactly that on the real broker.

tansu 0.6 reports a partition's end (its high watermark) as the first offset of
its last record batch + 1, so the end it reports can be a few messages short.
Hence: read until the broker has nothing more to give, and call consumers
caught up when they are past every end we know of and their commits stand still.
"""
import json
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from flashsale import events as ev
from flashsale.adapters import kafka
from flashsale.settings import Settings

# What each consumer group reads (as the services' main() functions say).
GROUPS = {"orders": [ev.ORDER_EVENTS, ev.INVENTORY_EVENTS, ev.PAYMENT_EVENTS],
          "inventory": [ev.ORDER_EVENTS, ev.PAYMENT_EVENTS], "payments": [ev.INVENTORY_EVENTS],
          "notifications": [ev.ORDER_EVENTS, ev.INVENTORY_EVENTS]}
CONSUMED = [ev.ORDER_EVENTS, ev.INVENTORY_EVENTS, ev.PAYMENT_EVENTS]  # every topic a consumer group reads
Ends = dict[tuple[str, int], int]  # (topic, partition) -> the offset after the last message


def _client(settings: Settings, group: str) -> Consumer:
    """A consumer that never joins its group: it only reads, or looks up the group's committed offsets."""
    return Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group,
                     "enable.auto.commit": False, **kafka.FAST_CONSUMER})


def _partitions(client: Consumer, topics: list[str]) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for topic in topics
            for p in client.list_topics(topic, timeout=10).topics[topic].partitions]


def _reported_ends(client: Consumer, partitions: list[TopicPartition]) -> Ends:
    return {(tp.topic, tp.partition): client.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}


def read_topic(settings: Settings, topic: str, timeout: float = 60) -> list[Message]:
    """Every message of `topic`, from its beginning until the broker has no more."""
    reader = _client(settings, f"reader-{uuid.uuid4()}")
    try:
        partitions = _partitions(reader, [topic])
        short_of = {p: end for (_, p), end in _reported_ends(reader, partitions).items() if end > 0}
        reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in short_of])
        messages, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = [m for m in reader.consume(1000, timeout=0.5) if not m.error()]
            for m in batch:
                partition, offset = m.partition(), m.offset()
                assert partition is not None and offset is not None  # a message, not an error: it has both
                if offset + 1 >= short_of.get(partition, 0):
                    short_of.pop(partition, None)
            messages += batch
            if not batch and not short_of:
                return messages
        raise TimeoutError(f"{topic}: not read to its end in {timeout} s")
    finally:
        reader.close()


def sale_of(message: Message) -> int | None:
    try:
        return json.loads(message.value() or b"").get("saleId")
    except (TypeError, ValueError, AttributeError):
        return None  # not an event (a poison message, say)


def send_again(settings: Settings, messages: list[Message]) -> Ends:
    """Produce the very same bytes once more, same key, same topic: a redelivery. Returns where they ended."""
    producer = kafka.reliable_producer(settings.kafka_bootstrap_servers, settings.broker_on_s3)
    ends: Ends = {}

    def delivered(err, m):
        if err is None:
            ends[(m.topic(), m.partition())] = max(ends.get((m.topic(), m.partition()), 0), m.offset() + 1)

    for m in messages:
        topic = m.topic()
        assert topic is not None  # a message read from a topic knows it
        producer.produce(topic, m.value(), key=m.key(), on_delivery=delivered)
    if producer.flush(30) or sum(ends.values()) == 0 < len(messages):
        raise TimeoutError("the broker did not acknowledge the replay")
    return ends


def committed(settings: Settings, group: str) -> Ends:
    client = _client(settings, group)
    try:
        return {(tp.topic, tp.partition): tp.offset
                for tp in client.committed(_partitions(client, GROUPS[group]), timeout=10)}
    finally:
        client.close()


def caught_up(settings: Settings, groups=tuple(GROUPS), at_least: Ends | None = None, timeout: float = 60,
              quiet: float = 1.5) -> bool:
    """Wait until each group has committed past every end we know of, and its commits stood still for `quiet` s."""
    deadline, last, still_since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        now = {group: committed(settings, group) for group in groups}
        ends = dict(at_least or {})
        client = _client(settings, "lab-ends")
        try:
            for tp, end in _reported_ends(client, _partitions(client, CONSUMED)).items():
                ends[tp] = max(end, ends.get(tp, 0))
        finally:
            client.close()
        past_ends = all(max(offset, 0) >= ends.get(tp, 0) for offsets in now.values() for tp, offset in offsets.items())
        if now != last or not past_ends:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            return True
        time.sleep(0.25)
    return False

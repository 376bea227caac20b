"""Deliver events again: read a topic from its start, send its messages once more, wait for the consumers.

Delivery is at least once, so any event may arrive twice; the contract says a
second delivery, or a replay of a whole topic, changes no state. These helpers
let a notebook or a test try exactly that on the real broker.

tansu 0.6 reports a partition's end (its high watermark) as the first offset of
its last record batch + 1, so the end it reports can be a few messages short.
Hence: read until the broker says "end" (`kafka.read_to_end`), and call consumers
caught up when they are past every end we know of and their commits stand still.
"""
import json
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from flashsale import events as ev
from flashsale.adapters import kafka
from flashsale.brokers import FAST_CONSUMER, choose
from flashsale.settings import Settings

# What each consumer group reads (as the services' main() functions say).
GROUPS = {"orders": [ev.ORDER_EVENTS, ev.INVENTORY_EVENTS, ev.PAYMENT_EVENTS],
          "inventory": [ev.ORDER_EVENTS, ev.PAYMENT_EVENTS], "payments": [ev.INVENTORY_EVENTS, ev.PAYMENT_EVENTS],
          "notifications": [ev.ORDER_EVENTS, ev.INVENTORY_EVENTS]}
CONSUMED = [ev.ORDER_EVENTS, ev.INVENTORY_EVENTS, ev.PAYMENT_EVENTS]  # every topic a consumer group reads
Ends = dict[tuple[str, int], int]  # (topic, partition) -> the offset after the last message


def _client(settings: Settings, group: str) -> Consumer:
    """A consumer that never joins its group: it only reads, or looks up the group's committed offsets."""
    return Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group,
                     "enable.auto.commit": False, **FAST_CONSUMER})


def _partitions(client: Consumer, topics: list[str]) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for topic in topics
            for p in client.list_topics(topic, timeout=10).topics[topic].partitions]


def _reported_ends(client: Consumer, partitions: list[TopicPartition]) -> Ends:
    return {(tp.topic, tp.partition): client.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}


def read_topic(settings: Settings, topic: str, timeout: float = 60) -> list[Message]:
    """Every message of `topic`, from its beginning until the broker says it has no more."""
    reader = kafka.consumer(settings.kafka_bootstrap_servers, f"reader-{uuid.uuid4()}", choose(settings).reading,
                            **{"enable.partition.eof": True})
    try:
        reader.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in _partitions(reader, [topic])])
        return [m for batch in kafka.read_to_end(reader, timeout, wait_s=0.5) for m in batch]
    finally:
        reader.close()


def sale_of(message: Message) -> int | None:
    try:
        return json.loads(message.value() or b"").get("saleId")
    except (TypeError, ValueError, AttributeError):
        return None  # not an event (a poison message, say)


def send_again(settings: Settings, messages: list[Message]) -> Ends:
    """Produce the very same bytes once more, same key, same topic: a redelivery. Returns where they ended."""
    producer = kafka.reliable_producer(settings.kafka_bootstrap_servers, choose(settings).producer)
    ends: Ends = {}
    for m in kafka.delivered_to(producer, [(str(m.topic()), m.value(), m.key()) for m in messages], timeout=30):
        key = (str(m.topic()), int(m.partition() or 0))
        ends[key] = max(ends.get(key, 0), int(m.offset() or 0) + 1)
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

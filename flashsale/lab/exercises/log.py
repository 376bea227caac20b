"""What a check wrote or made others write to a topic: the messages after the ends it noted before.

A shared stack's topics hold every sale so far, so a check notes each partition's end before it starts and reads
only from there. tansu 0.6 can report an end a few messages short (see `lab.replay`): then a few older messages
come too, which a check tells apart by its run's keys.
"""
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from flashsale.settings import Settings

Ends = dict[int, int]  # partition -> the offset after its last message


def _reader(settings: Settings) -> Consumer:
    """A client that only reads (it joins no group); it asks again soon when the broker has nothing yet (tansu
    answers an empty fetch only when its wait is over)."""
    return Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"reader-{uuid.uuid4()}",
                     "enable.auto.commit": False, "fetch.wait.max.ms": 10})


def ends(settings: Settings, topic: str, timeout: float = 30) -> Ends:
    """Where each partition of `topic` ends now. A topic just made may have no leader yet: then ask again."""
    reader, deadline = _reader(settings), time.monotonic() + timeout
    try:
        while True:
            try:
                partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
                return {p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
            except KafkaException:  # measured on Apache Kafka: NOT_LEADER_FOR_PARTITION just after creation
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        reader.close()


def read_since(settings: Settings, topic: str, since: Ends, timeout: float = 60) -> list[Message]:
    """Every message of `topic` from `since` on, in each partition's order, until the broker has no more."""
    now = ends(settings, topic)
    short_of = {p: end for p, end in now.items() if end > since.get(p, 0)}
    if not short_of:
        return []
    reader = _reader(settings)
    try:
        reader.assign([TopicPartition(topic, p, since.get(p, 0)) for p in short_of])
        messages: list[Message] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = [m for m in reader.consume(1000, timeout=0.5) if not m.error()]
            for m in batch:
                if (m.offset() or 0) + 1 >= short_of.get(m.partition() or 0, 0):
                    short_of.pop(m.partition() or 0, None)
            messages += batch
            if not batch and not short_of:
                return messages
        raise TimeoutError(f"{topic}: not read to its end in {timeout} s")
    finally:
        reader.close()

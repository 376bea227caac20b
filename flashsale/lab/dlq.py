"""Dead letters: look at them (`flashsale dlq`), and send them back once their cause is fixed (`--replay`).

A dead letter is the original message, byte for byte, with its key and headers that say why and where
from (adapters/dead_letters.py). Its order went no further: it stays PENDING until someone looks here.

Sending a letter back to its topic is safe because every handler is idempotent: an event that was handled
already changes nothing the second time. The group `flashsale-dlq-replay` remembers, in its committed
offsets, which letters went back, so two replays send each letter once. A letter whose cause is not fixed
comes back to the dead-letter topic, as a new letter.
"""
from dataclasses import asdict, dataclass

from confluent_kafka import Consumer, TopicPartition

from flashsale.adapters import kafka
from flashsale.adapters.dead_letters import Record
from flashsale.brokers import choose
from flashsale.events import dead_letter_topic
from flashsale.lab.replay import read_topic
from flashsale.settings import Settings

REPLAYER = "flashsale-dlq-replay"


@dataclass
class Letter:
    topic: str  # where it came from, and goes back to
    partition: int | None  # None: a letter older than these headers
    offset: int | None
    key: bytes | None
    error: str
    at: tuple[str, int, int]  # the dead letter itself: <topic>.dlq, partition, offset
    replayed: bool
    value: bytes | None

    def as_dict(self) -> dict:
        text = {name: raw.decode(errors="replace") if raw is not None else None
                for name, raw in (("key", self.key), ("value", self.value))}
        return {**asdict(self), **text, "at": dict(zip(("topic", "partition", "offset"), self.at, strict=True))}


def letters(settings: Settings, topics: list[str]) -> list[Letter]:
    """Every dead letter of `topics`, oldest first on each partition, and whether it has been sent back."""
    found = [m for topic in topics for m in read_topic(settings, dead_letter_topic(topic))]
    sent = _sent_back_up_to(settings, {(str(m.topic()), int(m.partition() or 0)) for m in found})
    return [_letter(m, int(m.offset() or 0) < sent.get((str(m.topic()), int(m.partition() or 0)), 0)) for m in found]


def replay(settings: Settings, topics: list[str]) -> list[Letter]:
    """Send every letter not yet sent back to its topic; once the broker has acknowledged them, remember it."""
    waiting = [letter for letter in letters(settings, topics) if not letter.replayed]
    producer = kafka.reliable_producer(settings.kafka_bootstrap_servers, choose(settings).producer)
    kafka.publish(producer, [Record(letter.topic, letter.key, letter.value, {"replayed-from": "{}[{}]@{}".format(
        *letter.at)}) for letter in waiting])
    ends: dict[tuple[str, int], int] = {}
    for letter in waiting:
        topic, partition, offset = letter.at
        ends[(topic, partition)] = max(ends.get((topic, partition), 0), offset + 1)
    if ends:
        client = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": REPLAYER})
        try:
            client.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in ends.items()], asynchronous=False)
        finally:
            client.close()
    return waiting


def _sent_back_up_to(settings: Settings, partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
    if not partitions:
        return {}
    client = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": REPLAYER})
    try:
        return {(tp.topic, tp.partition): tp.offset
                for tp in client.committed([TopicPartition(t, p) for t, p in partitions], timeout=10)}
    finally:
        client.close()


def _letter(message, replayed: bool) -> Letter:
    headers = {name: value.decode(errors="replace") for name, value in message.headers() or []}
    origin = headers.get("topic", message.topic().removesuffix(".dlq"))
    return Letter(origin, _int(headers.get("partition")), _int(headers.get("offset")),
                  message.key(), headers.get("error", ""), (message.topic(), message.partition(), message.offset()),
                  replayed, message.value())


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None

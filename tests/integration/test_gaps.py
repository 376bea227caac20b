"""The gap guard on a real broker: a stream without holes passes untouched, even read from inside a batch, and a
hole no re-read fills (a transaction's marker takes an offset) is sought back, then let through, logged."""
import logging
import time
import uuid

from confluent_kafka import Producer, TopicPartition

from flashsale.adapters import kafka
from flashsale.adapters.gaps import GapGuard


def read(bootstrap: str, topic: str, offset: int, guard: GapGuard, last: int) -> list[int]:
    """The offsets the guard admits, read from `offset` until `last` comes (or 20 s pass)."""
    source = kafka.consumer(bootstrap, f"gaps-{uuid.uuid4().hex[:8]}")
    source.assign([TopicPartition(topic, 0, offset)])
    guard.expect([TopicPartition(topic, 0, offset)])
    got: list[int] = []
    deadline = time.monotonic() + 20
    try:
        while last not in got and time.monotonic() < deadline:
            messages = [m for m in source.consume(100, timeout=0.2) if not m.error()]
            got += [m.offset() for m in guard.admit(source, messages)]
        return got
    finally:
        source.close()


def test_a_read_that_starts_inside_a_batch_gets_the_rest_of_it_and_the_guard_lets_it_pass(wired, new_topic):
    bootstrap = wired.kafka_bootstrap_servers
    topic = new_topic("gaps")
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 200})
    for size in (10, 5):  # offsets 0-9 in one batch, 10-14 in the next
        for i in range(size):
            producer.produce(topic, f"record {i}".encode())
        assert producer.flush(10) == 0
    guard = GapGuard()
    assert read(bootstrap, topic, 5, guard, last=14) == list(range(5, 15))
    assert guard.open == {} and guard.reread == 0


def test_a_hole_that_never_fills_is_sought_back_until_the_grace_is_over_then_let_through(wired, new_topic, caplog):
    bootstrap = wired.kafka_bootstrap_servers
    topic = new_topic("gaps")
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": topic})
    producer.init_transactions(30)
    for first in (0, 3):  # the second transaction starts only once the first one's marker is written
        producer.begin_transaction()
        for i in range(first, first + 3):
            producer.produce(topic, f"record {i}".encode())
        producer.commit_transaction(30)  # offsets 0-2, the marker at 3 (which no consumer is handed), 4-6, 7
    guard = GapGuard(grace_s=1)
    with caplog.at_level(logging.WARNING, logger="flashsale.adapters.gaps"):
        assert read(bootstrap, topic, 0, guard, last=6) == [0, 1, 2, 4, 5, 6]
    assert "skipped offsets 3-3; reading them again" in caplog.text
    assert "offsets 3-3 never came back in 1 s" in caplog.text

"""How a consumer waits for events on the suite's broker (its profile's `waiting`, brokers.py): Apache Kafka holds an
idle fetch until an event arrives (a long poll), tansu answers it only when its wait is over, so there the client
asks again every few milliseconds. Either way an event reaches a waiting consumer at once."""
import json
import statistics
import time
import uuid

from confluent_kafka import OFFSET_END, Producer, TopicPartition

from flashsale.adapters import kafka
from flashsale.brokers import choose


class Waiting:
    """A consumer set up as the services' are, on a topic of its own, that counts its fetch requests."""

    def __init__(self, settings, topic: str):
        self.fetches = 0
        self.source = kafka.consumer(settings.kafka_bootstrap_servers, f"waiting-{uuid.uuid4().hex[:8]}",
                                     choose(settings).waiting, **{"statistics.interval.ms": 200,
                                                                 "stats_cb": self._count, **kafka.QUIET})
        self.source.assign([TopicPartition(topic, 0, OFFSET_END)])

    def _count(self, stats: str) -> None:  # librdkafka's statistics: requests sent, per broker and kind
        brokers = json.loads(stats)["brokers"].values()
        self.fetches = sum(b["req"].get("Fetch", 0) for b in brokers if b["nodeid"] >= 0)

    def fetches_in(self, seconds: float) -> int:
        before = self.poll_for(1.0)  # a statistics report from the steady state, not from the start
        return self.poll_for(seconds) - before

    def poll_for(self, seconds: float) -> int:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.source.poll(0.05) is None, "nothing was written to this topic"
        return self.fetches


def test_an_idle_consumer_waits_at_apache_kafka_and_asks_tansu_again_and_again(wired, new_topic):
    waiting = Waiting(wired, new_topic("waiting"))
    try:
        fetches = waiting.fetches_in(2.0)
    finally:
        waiting.source.close()
    if wired.consumer_groups:  # Apache Kafka: one fetch per 500 ms wait
        assert 1 <= fetches <= 12, f"{fetches} fetches in 2 s from an idle consumer: not a long poll"
    else:  # tansu: one per wait (5 ms in memory, 100 ms on S3 storage, the default) and round trip
        wait_ms = choose(wired).waiting["fetch.wait.max.ms"]
        assert fetches >= min(50, 1000 / wait_ms), \
            f"only {fetches} fetches in 2 s: tansu's consumers wait longer than {wait_ms} ms, as brokers.py says"


def test_an_event_reaches_a_consumer_that_is_waiting_at_the_broker_before_its_wait_is_over(wired, new_topic):
    topic = new_topic("waiting")
    waiting, producer = Waiting(wired, topic), Producer({"bootstrap.servers": wired.kafka_bootstrap_servers})
    delays = []
    try:
        waiting.poll_for(1.0)  # its fetch is now waiting at the broker
        for i in range(5):
            sent = time.monotonic()
            producer.produce(topic, f"event {i}".encode())
            assert producer.flush(10) == 0
            message = waiting.source.poll(5)
            assert message is not None and not message.error(), f"event {i} never arrived"
            delays.append(time.monotonic() - sent)
            time.sleep(0.3)  # long enough for the next fetch to be waiting again
    finally:
        waiting.source.close()
    assert statistics.median(delays) < 0.25, f"delays {delays}: the consumer waited out its fetch (500 ms on Kafka)"

"""The doze's rules (adapters/kafka/doze.py), with a fake consumer and a fake Redis: when a consumer sleeps, what
wakes it, where it goes on, and that a bell it cannot hear keeps it awake. Each rule has a wrong version below
that a test here rejects. The real thing, on tansu: tests/integration/test_sleeping_consumers.py."""
import time

import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

from flashsale.adapters.kafka import doze
from flashsale.adapters.kafka.doze import Bell, Dozing

pytestmark = pytest.mark.broker_free


class PubSub:
    def __init__(self, hub: "Hub"):
        self.hub, self.inbox = hub, []

    def subscribe(self, channel):
        self.hub.subscribes += 1
        if self.hub.down:
            raise redis.ConnectionError("refused")
        self.hub.listeners.append(self)

    def get_message(self, timeout=0.0):
        if self.hub.down:
            raise redis.ConnectionError("gone")
        if not self.inbox and timeout:
            time.sleep(min(timeout, 0.01))  # a real wait would last `timeout`; the tests step the clock instead
        return self.inbox.pop(0) if self.inbox else None

    def close(self):
        pass


class Hub:
    """A Redis with one channel."""

    def __init__(self):
        self.listeners, self.down, self.published, self.subscribes = [], False, 0, 0

    def pubsub(self, ignore_subscribe_messages=True):
        return PubSub(self)

    def publish(self, channel, message):
        if self.down:
            raise redis.ConnectionError("refused")
        self.published += 1
        for listener in self.listeners:
            listener.inbox.append({"type": "message", "data": message})

    def close(self):
        pass


class Consumer:
    """Partitions, each at a position; `consume` fetches unless paused, and every fetch is counted."""

    def __init__(self, positions: dict[int, int], assigned: int = 0):
        self.positions, self.assigned = positions, assigned
        self.paused, self.fetches, self.sought, self.waiting = False, 0, [], []

    def assignment(self):
        return [TopicPartition("t", p, self.assigned) for p in self.positions]

    def reading(self) -> dict:
        """What a GapGuard would say: the offset each partition delivers next, where it has delivered one."""
        return {("t", p): offset for p, offset in self.positions.items() if offset >= 0}

    def get_watermark_offsets(self, tp, timeout=None):
        return 0, 42

    def pause(self, partitions):
        self.paused = True

    def resume(self, partitions):
        self.paused = False

    def seek(self, tp):
        self.sought.append((tp.partition, tp.offset))

    def consume(self, n, timeout):
        assert not self.paused, "a paused consumer was asked to consume"
        self.fetches += 1
        return [self.waiting.pop(0)] if self.waiting else []


@pytest.fixture
def clock(monkeypatch):
    """time.monotonic in doze.py, moved by the test."""
    now = [1000.0]
    monkeypatch.setattr(doze.time, "monotonic", lambda: now[0])
    return now


def asleep_after_quiet(clock, consumer, dozing):
    dozing.consume(consumer, 1.0)  # awake: it fetches
    clock[0] += doze.QUIET_S
    assert dozing.consume(consumer, 1.0) == [] and consumer.paused


def test_a_consumer_that_heard_nothing_for_the_quiet_spell_pauses_and_fetches_nothing_while_asleep(clock):
    consumer = Consumer({0: 5, 1: 7})
    dozing = Dozing(Hub()).follow(consumer.reading())
    asleep_after_quiet(clock, consumer, dozing)
    fetches = consumer.fetches
    for _ in range(10):
        clock[0] += 0.2  # under LOOK_S in all
        dozing.consume(consumer, 1.0)
    assert consumer.fetches == fetches and consumer.paused


def test_a_consumer_that_hears_events_stays_awake(clock):
    consumer = Consumer({0: 5})
    dozing = Dozing(Hub()).follow(consumer.reading())
    for _ in range(10):
        consumer.waiting.append("event")
        clock[0] += doze.QUIET_S / 2
        assert dozing.consume(consumer, 1.0) == ["event"]
    assert not consumer.paused


def test_a_ring_wakes_a_sleeper_where_it_stopped_and_keeps_it_awake_for_the_quiet_spell(clock):
    hub = Hub()
    consumer, bell = Consumer({0: 5, 1: 7}), Bell(hub)
    dozing = Dozing(hub).follow(consumer.reading())
    asleep_after_quiet(clock, consumer, dozing)
    consumer.waiting.append("order")
    bell.ring()
    assert dozing.consume(consumer, 1.0) == ["order"] and not consumer.paused
    assert sorted(consumer.sought) == [(0, 5), (1, 7)]  # a seek fetches at once; a bare resume up to 1 s later
    clock[0] += doze.QUIET_S - 0.1
    dozing.consume(consumer, 1.0)
    assert not consumer.paused


def test_a_ring_heard_while_awake_wakes_the_consumer_the_moment_it_falls_asleep(clock):
    hub = Hub()
    consumer = Consumer({0: 5})
    dozing = Dozing(hub).follow(consumer.reading())
    asleep_after_quiet(clock, consumer, dozing)  # subscribed now
    Bell(hub).ring()
    dozing.consume(consumer, 1.0)  # woken
    Bell(hub).ring()  # rung while it is awake: a producer wrote something it may not have fetched yet
    clock[0] += doze.QUIET_S
    consumer.waiting.append("written just before the ring")
    assert dozing.consume(consumer, 1.0) == ["written just before the ring"]


def test_a_sleeper_still_looks_every_look_interval_for_producers_that_do_not_ring(clock):
    consumer = Consumer({0: 5})
    dozing = Dozing(Hub()).follow(consumer.reading())
    asleep_after_quiet(clock, consumer, dozing)
    consumer.waiting.append("from a notebook's own producer")
    clock[0] += doze.LOOK_S
    assert dozing.consume(consumer, 1.0) == ["from a notebook's own producer"]


def test_a_look_that_finds_nothing_costs_one_fetch_and_the_consumer_sleeps_again(clock):
    consumer = Consumer({0: 5})
    dozing = Dozing(Hub()).follow(consumer.reading())
    asleep_after_quiet(clock, consumer, dozing)
    fetches = consumer.fetches
    clock[0] += doze.LOOK_S
    assert dozing.consume(consumer, 1.0) == []
    dozing.consume(consumer, 1.0)
    assert consumer.fetches == fetches + 1 and consumer.paused


def test_a_consumer_that_cannot_hear_the_bell_stays_awake(clock):
    hub = Hub()
    hub.down = True
    consumer = Consumer({0: 5})
    dozing = Dozing(hub).follow(consumer.reading())
    for _ in range(5):
        clock[0] += doze.QUIET_S
        for _ in range(10):  # a call a second, as the loop makes
            dozing.consume(consumer, 1.0)
            assert not consumer.paused
    assert hub.subscribes == 5  # it tries the bell again once a quiet spell, not at every call


def test_a_sleeper_whose_bell_is_lost_wakes(clock):
    hub = Hub()
    consumer = Consumer({0: 5})
    dozing = Dozing(hub).follow(consumer.reading())
    asleep_after_quiet(clock, consumer, dozing)
    hub.down = True
    consumer.waiting.append("an order")
    assert dozing.consume(consumer, 1.0) == ["an order"] and not consumer.paused


def test_a_partition_that_has_read_nothing_goes_on_where_it_was_assigned_and_the_end_is_resolved_before_sleeping(clock):
    for assigned, expected in ((OFFSET_BEGINNING, OFFSET_BEGINNING), (OFFSET_END, 42), (17, 17)):
        consumer = Consumer({0: -1001}, assigned=assigned)
        assert [(tp.partition, tp.offset) for tp in doze.resume_points(consumer, {})] == [(0, expected)]


def test_a_consumer_woken_for_nothing_sleeps_again_and_next_wakes_where_it_stopped_not_at_the_start(clock):
    hub = Hub()
    consumer = Consumer({0: 5}, assigned=OFFSET_BEGINNING)
    reading = consumer.reading()
    dozing = Dozing(hub).follow(reading)  # a live view: the GapGuard's `next`
    asleep_after_quiet(clock, consumer, dozing)
    for _ in range(3):  # rung for other topics' events: woken, nothing for it, asleep again
        Bell(hub).ring()
        clock[0] += doze.RING_S
        dozing.consume(consumer, 1.0)
        clock[0] += doze.QUIET_S
        dozing.consume(consumer, 1.0)
        assert consumer.paused
    consumer.sought.clear()
    Bell(hub).ring()
    dozing.consume(consumer, 1.0)
    assert consumer.sought == [(0, 5)]


def test_a_producer_rings_at_most_once_a_ring_interval_and_a_failed_ring_is_not_raised(clock):
    hub = Hub()
    bell = Bell(hub)
    for _ in range(10):
        bell.ring()
        clock[0] += doze.RING_S / 4
    assert hub.published == 3  # at 0, 1 and 2 ring intervals
    hub.down = True
    clock[0] += doze.RING_S
    bell.ring()  # logged, not raised: a sleeper looks again within LOOK_S


def test_the_quiet_spell_outlasts_the_ring_interval():
    assert doze.QUIET_S > doze.RING_S  # doze.py's argument that no event waits for a ring needs it

"""The one consumer loop every service runs: read a batch, handle it, publish what came of it, then commit.

It is built from four parts, so that its failure paths can be tried without a broker (tests/unit/test_loop.py):
a source (where batches come from, and where the loop commits), a sink (where the output goes, acknowledged),
an owner (how the partitions are taken: consume.Ownership) and a stop signal. `kafka_loop` builds it from Kafka.

Delivery is at least once: handlers must be safe to run twice, because a crash between "done" and "commit"
redelivers. A message that cannot be read, or whose handler fails `Settings.handler_attempts` times, goes to
its topic's dead-letter topic (adapters/dead_letters.py), and the partition moves on; its order stays PENDING
until someone looks (`flashsale dlq`).
"""
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from flashsale.adapters.dead_letters import Handler, Postponed, Record, decode_or_dead_letter, isolate
from flashsale.adapters.kafka.consume import ExplicitOwnership, Membership, Ownership, member_config, ownership
from flashsale.adapters.kafka.doze import Bell, Dozing
from flashsale.adapters.kafka.produce import publish, reliable_producer
from flashsale.adapters.kafka.stopping import Handlers, Interrupted, StopSignal
from flashsale.brokers import BrokerProfile
from flashsale.events import Event, Notification
from flashsale.settings import Settings

log = logging.getLogger(__name__)

# How long the loop waits for the next event before it beats, ticks its timer, and waits again. The first event
# ends the wait at once, and so does a stop signal (StopSignal), so it need not be short: at 0.1 s, each idle
# service woke ten times a second; at 1 s its idle cost halved (measured: 0.25% -> 0.13% of a core). The heartbeat
# file stays fresh (stack/probes.py: HEARTBEAT_FRESH_S) and the payment deadline is looked at every second.
WAIT_S = 1.0


class FatalConsumerError(Exception):
    """The consumer can do nothing more (a static member fenced after Apache Kafka's kill -9 and restart, say): it
    ends the loop, not the service, whose `runner.serve` builds a new consumer that joins as a new member."""


class Source(Protocol):
    """Where a loop's batches come from: a `KafkaSource`, or a fake in a unit test."""

    def next_batch(self) -> list[Message]: ...

    def commit_after(self, messages: list[Message]) -> None: ...

    def joined(self) -> bool: ...

    def close(self) -> None: ...


class Sink(Protocol):
    """Where a loop's output goes: `publish` returns once the broker has acknowledged all of it, or raises."""

    def publish(self, records: Iterable[Event | Notification | Record]) -> None: ...

    def close(self) -> None: ...


class Timer(Protocol):
    """Work a loop does between batches, on its own clock (the orders service's payment deadline): the events that
    are due now, and what to do once the broker has acknowledged them (mark them announced)."""

    def due(self) -> list[Event]: ...

    def announced(self, events: list[Event]) -> None: ...


S = TypeVar("S", bound=Source)


@dataclass
class ConsumerLoop(Generic[S]):
    source: S
    sink: Sink
    owner: Ownership[S]
    stop: StopSignal = field(default_factory=StopSignal)
    attempts: int = 5  # Settings.handler_attempts
    pause_s: float = 0.5  # before a failed batch is read again
    beat: Callable[[], None] = lambda: None  # looping, and in its group: `flashsale status` reads it

    def run(self, topics: list[str], handle: Handler, timer: Timer | None = None) -> None:
        """Consume, handle a batch, publish what it produced and its dead letters, then commit. Until stopped.

        A batch that fails is rewound and tried again. `Postponed` (an outage) is retried for as long as it lasts;
        after `attempts` other failures in a row, its events are handled one at a time and the one that still
        fails is dead-lettered (`isolate`), so a bug costs one order, not the partition. A `timer`'s due events
        are published between batches, in the same thread: nothing runs unwatched beside the loop.
        """
        self.owner.take(self.source, topics)
        failures = 0  # how many times in a row the batch at the head of the partitions has failed
        try:
            with Handlers(self.stop):
                while not self.stop.stopped:
                    if self.source.joined():
                        self.beat()
                    if timer is not None:
                        self.tick(timer)
                    try:
                        with self.stop.interruptible():
                            batch = self.source.next_batch()
                    except Interrupted:
                        break  # what it consumed meanwhile is not committed: the next owner reads it
                    messages = self.owner.admit(self.source, batch)
                    if not messages:
                        continue
                    try:
                        decoded, dead = decode_or_dead_letter(messages)
                        if failures < self.attempts:
                            out = handle([event for _, event in decoded])
                        else:
                            out, more_dead = isolate(handle, decoded, self.attempts, self.pause_s)
                            dead += more_dead
                        self.sink.publish([*dead, *out])  # dead letters too: nothing is committed until they are stored
                        self.source.commit_after(messages)  # what was handled: no more
                        failures = 0
                    except Exception as error:
                        if isinstance(error, FatalConsumerError):
                            raise  # its batch is not committed: the next member reads it again
                        if isinstance(error, Postponed):
                            log.warning("batch postponed: %s", error)
                        else:
                            failures += 1
                            log.exception("batch failed (%d in a row; from %d, its events are handled one at a time "
                                          "and the one that fails is dead-lettered); it will be retried",
                                          failures, self.attempts)
                        self.owner.rewind(self.source, messages)
                        time.sleep(self.pause_s)
        finally:
            self.source.close()
            self.sink.close()
            log.info("stopped cleanly" if self.stop.stopped else "stopped by an error")


    def tick(self, timer: Timer) -> None:
        """Publish what the timer says is due, then tell it so; a failure is logged and tried at the next tick."""
        try:
            if due := timer.due():
                self.sink.publish(due)
                timer.announced(due)
        except Postponed as error:
            log.warning("timer postponed: %s", error)
        except Exception:
            log.exception("timer failed; it runs again at its next tick")


class KafkaSource(Consumer):
    """The loop's consumer: its next batch (the one place a consumer service waits for events), a commit after it."""

    def __init__(self, config: dict[str, Any], batch_size: int = 500, membership: Membership | None = None,
                 dozing: Dozing | None = None):
        super().__init__({**config, **(membership.config() if membership else {})})
        self.batch_size, self.membership, self.dozing = batch_size, membership, dozing

    def next_batch(self, wait: float = WAIT_S) -> list[Message]:
        """The first message as soon as it comes, with whatever else has already arrived; nothing after `wait`.

        `consume(batch_size, timeout)` alone waits the whole timeout to fill the batch: at 200 orders/s that held
        every batch 100 ms at each of the five hops of an order (measured: 239 ms end to end, 10 ms with this).
        Where the broker makes idle fetches dear (tansu), the consumer sleeps while the stack is quiet (doze.py).
        """
        first = self.dozing.consume(self, wait) if self.dozing else self.consume(1, timeout=wait)
        batch = first + self.consume(self.batch_size - 1, timeout=0) if first else first
        return [m for m in batch if not failed(m)]

    def close(self) -> None:
        if self.dozing is not None:
            self.dozing.close()
        super().close()

    def commit_after(self, messages: list[Message]) -> None:
        try:
            self.commit(offsets=after(messages), asynchronous=False)
        except KafkaException as error:
            if fatal(error.args[0]):
                raise FatalConsumerError(f"fatal consumer error on commit: {error.args[0]}") from error
            raise

    def joined(self) -> bool:
        """In its group (a member that has its assignment, maybe empty); a client that owns its partitions: always."""
        return self.membership is None or self.membership.joined


class KafkaSink:
    def __init__(self, producer: Producer, bell: Bell | None = None):
        self.producer, self.bell = producer, bell

    def publish(self, records: Iterable[Event | Notification | Record]) -> None:
        publish(self.producer, records)
        if self.bell is not None:  # acknowledged: sleeping consumers may now wake to read it (doze.py)
            self.bell.ring()

    def close(self) -> None:
        """Everything was acknowledged batch by batch, so a leftover is news; it is logged, not raised, so that it
        cannot hide why the loop stopped."""
        left = self.producer.flush(5)
        if left:
            log.error("%d messages were not acknowledged when the loop stopped", left)


def failed(message: Message) -> bool:
    """An error in place of a message: end of partition is news to nobody; others are logged, and a fatal one
    (a fenced member, say) ends the loop, never a member that reads nothing."""
    error = message.error()
    if error is None:
        return False
    if error.code() != KafkaError._PARTITION_EOF:
        log.error("consumer error: %s", error)
        if fatal(error):
            raise FatalConsumerError(f"fatal consumer error: {error}")
    return True


def fatal(error: KafkaError) -> bool:
    """A fence reaches the loop as code _FATAL, its fatal() flag unset (measured at a load of 4-5, Kafka killed)."""
    return bool(error.fatal()) or error.code() == KafkaError._FATAL


def after(messages: list[Message]) -> list[TopicPartition]:
    """The offsets to commit once `messages` are handled: each partition's last one, plus one."""
    last = {(str(m.topic()), int(m.partition() or 0)): int(m.offset() or 0) for m in messages}  # a partition's come
    # in order: the last one wins
    return [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in last.items()]


def heartbeat_file(home: Path, group: str, instance: int) -> Path:
    return home / "run" / f"{group}-{instance}.alive"


def kafka_loop(settings: Settings, profile: BrokerProfile, group: str) -> ConsumerLoop[KafkaSource]:
    """The loop of instance `settings.instance` of service `group`, its partitions taken as `profile` says."""
    membership = Membership() if profile.groups else None
    owner = ownership(settings, profile)
    dozing = None
    if profile.dozes:  # tansu, whose readers keep a GapGuard: it says where each partition goes on
        dozing = Dozing.at(settings.redis_url).follow(owner.gaps.next if isinstance(owner, ExplicitOwnership) else {})
    source = KafkaSource(member_config(settings, group, profile), membership=membership, dozing=dozing)
    producer = reliable_producer(settings.kafka_bootstrap_servers, profile.producer)
    bell = Bell.at(settings.redis_url) if profile.dozes else None
    heartbeat = heartbeat_file(settings.home, group, settings.instance)
    return ConsumerLoop(source, KafkaSink(producer, bell), owner, attempts=settings.handler_attempts,
                        beat=heartbeat.touch)

"""Kafka edges: topic setup, producers, and the one consumer loop every service uses.

The loop takes its partitions in one of two ways, chosen by the broker:
- On Apache Kafka, a service instance is a member of its consumer group (`subscribe`): the group coordinator
  hands out the partitions and moves them when a member joins, leaves or dies. The classic protocol by default,
  KIP-848 as a setting (Settings.group_protocol says why).
- On tansu, whose group coordinator wedges under churn (measured; see "Consumer groups, and tansu" in the
  README), instance i of n owns the partitions p with p % n == i and commits under the same group id; and
  because tansu 0.6 can skip a batch in a fetch, its loop reads a partition's offsets without holes (gaps.py).
Either way offsets are committed after processing. Delivery is at least once: handlers must be safe to run
twice, because a crash between "done" and "commit" redelivers. A message that cannot be read, or whose handler
fails `Settings.handler_attempts` times, goes to its topic's dead-letter topic (adapters/dead_letters.py), and
the partition moves on; its order stays PENDING until someone looks (`flashsale dlq`).
"""
import asyncio
import atexit
import json
import logging
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from flashsale.adapters.dead_letters import Postponed, Record, decode_or_dead_letter, isolate
from flashsale.adapters.gaps import GapGuard
from flashsale.events import TOPICS, Event, Notification, dead_letter_topic
from flashsale.settings import Settings
from flashsale.stack.processes import port_open

log = logging.getLogger(__name__)

# How a consumer waits for events depends on the broker: one entry per broker (`waiting`).
# tansu, in memory. Measured: these make a consumer start in ~1 s and deliver in ~4 ms (defaults: ~23 s, ~250 ms).
# tansu answers an empty fetch only when its wait is over, even if an event arrives meanwhile (measured: allowed
# 100 ms, end-to-end p50 at 100 orders/s went from 62 to 186 ms), so the wait is short and the client asks again.
# Its memory storage scans a partition's record batches on every fetch that returns data, so a consumer that
# keeps up (one small fetch after another) kept it at 100% CPU at 1,100 orders/s. With one message waiting
# locally, the client fetches again only 10 ms later: end-to-end p99 at 1,100 orders/s went from 0.6-1.5 s to
# ~0.16 s, and tansu from ~100% to ~60% of a core.
FAST_CONSUMER = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 5,
                 "queued.min.messages": 1, "fetch.queue.backoff.ms": 10}
# tansu on S3 storage (`flashsale up --durable`) lists a partition's objects for every fetch. Allowed 5 ms, a busy
# broker answers empty, and consumers that ask again at once keep it busy: measured, every consumer stalled for
# good once the topics held a few thousand events. Allowed 100 ms, it answers with the events.
ON_S3_CONSUMER = {**FAST_CONSUMER, "fetch.wait.max.ms": 100}
# Apache Kafka: a long poll. The broker holds a fetch until an event arrives (`fetch.min.bytes`, 1) or 500 ms pass,
# so a consumer that has caught up asks twice a second instead of 200 times, and still gets each event as it is
# written. Measured on one node with the services idle: the stack's idle CPU fell from 29% to 8% of a core (Kafka's
# from 18% to 2%), and end to end at 100 orders/s p99 from 107-241 ms to 83-107 ms. Without tansu's queue backoff:
# librdkafka leaves a partition that has a message waiting locally out of its next fetch, and a fetch that waits
# 500 ms kept that partition's events waiting as long (measured: p99 598-636 ms at 100 orders/s).
LONG_POLL = {"fetch.wait.max.ms": 500}
WAITING = {"tansu": FAST_CONSUMER, "tansu-s3": ON_S3_CONSUMER, "kafka": LONG_POLL}


def waiting(settings: Settings) -> dict:
    """How this stack's consumers wait for events: its broker's entry in `WAITING`."""
    return WAITING["kafka" if settings.consumer_groups else "tansu-s3" if settings.broker_on_s3 else "tansu"]


# Apache Kafka's group members. KIP-848 moves the group timings to the broker (stack/apache_kafka.py says why
# they are short in the lab); the client may not set them. The classic protocol keeps them on the client.
# KIP-848's default assignor (uniform) balances a member's partition count over all its topics: measured, 3 inventory
# members (order.events + payment.events) got order.events 0 and 1, order.events 2, and none of it. The broker's
# `range` shares out each topic on its own, sticky too: one partition of each topic per member, the same number in
# both (the same orderIds), and a 4th member sits idle (measured).
GROUP_MEMBER: dict[str, dict[str, str | int]] = {
    "consumer": {"group.protocol": "consumer", "group.remote.assignor": "range"},
    # Classic: `range` too, for the same reason (cooperative-sticky balanced 6 partitions of two topics as
    # payment.events 1+2 / order.events 0+2 / order.events 1 + payment.events 0, measured). It is eager: every
    # member pauses during a rebalance; static membership spares a restart within the session timeout one.
    "classic": {"group.protocol": "classic", "partition.assignment.strategy": "range",
                "session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
}
# On three Kafka nodes a member's session must outlast the move of its group's coordinator when that node dies
# (the controllers notice in 3 s, elect, load the group): measured in CI under load, that took more than 6 s;
# every member gave its session up (SESSTMOUT), rejoined under its static id, and a request still in flight
# under its old member id got it fenced (FENCED_INSTANCE_ID, fatal in librdkafka): every service stopped.
# A killed *service* keeps its partitions this long there; no lesson kills one on three nodes.
CLUSTER_SESSION_MS = 15000
CLUSTER_CLASSIC = {"session.timeout.ms": CLUSTER_SESSION_MS}  # KIP-848 keeps it on the broker (THREE_NODES)
QUIET = {"log_level": 0}  # a probe of a broker that may be down on purpose says nothing


def answers(bootstrap: str, timeout: float = 2) -> bool:
    """The broker serves a metadata request (an open port alone can come before that)."""
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    if not port_open(host, int(port)):  # no client (and its threads) for a broker that is still starting
        return False
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    return admin.list_topics(timeout=timeout).brokers != {}


# The log of finished sales goes away after a workshop day, as Kafka users bound a log: by retention. 12 h keeps a
# whole day of lessons readable (replays, read models), and a stack left up overnight does not carry yesterday.
# Kafka deletes only closed segments, and at a lab's rate its default 1 GiB ones would stay open for weeks (measured:
# 30 races of 1,000 buyers wrote 51 MB over all 24 partitions): here one closes at its first write after an hour,
# or at 16 MiB, so nothing outlives ~13 h. tansu 0.6 takes these configs and describes them back, but never
# deletes (measured: retention.ms 2 s, 4,000 records all still there after 12 s).
TOPIC_CONFIG = {"cleanup.policy": "delete", "retention.ms": str(12 * 3600_000), "segment.ms": str(3600_000),
                "segment.bytes": str(16 * 2**20)}


def ensure_topics(bootstrap: str, partitions: int, replicas: int = 1, timeout: float = 10) -> None:
    """Create the topics and their dead-letter topics, with `TOPIC_CONFIG`; never rely on auto-creation.

    With several replicas (three Kafka nodes) an acks=all write must reach all but one of them before it is
    acknowledged (`min.insync.replicas`): one node may die without losing it; with two down, no write is.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wanted = [*TOPICS, *(dead_letter_topic(t) for t in TOPICS)]
    existing = admin.list_topics(timeout=timeout).topics
    config = {**TOPIC_CONFIG, **({"min.insync.replicas": str(replicas - 1)} if replicas > 1 else {})}
    new = [NewTopic(t, num_partitions=partitions, replication_factor=replicas, config=config)
           for t in wanted if t not in existing]
    for topic, future in (admin.create_topics(new, request_timeout=timeout).items() if new else []):
        try:
            future.result(timeout)
        except KafkaException as error:
            if "TOPIC_ALREADY_EXISTS" not in str(error):
                raise


def reliable_producer(bootstrap: str, on_s3: bool = False, **overrides) -> Producer:
    """Idempotent, acks=all: an acknowledged event is stored exactly once, in order.

    acks=all waits for every in-sync replica. On the lab's one broker that is the leader alone (acks=1, one copy);
    in production it takes replication (factor 3) and min.insync.replicas=2 to mean two copies.

    Not idempotent on tansu's S3 storage, where that loses events: tansu 0.6 records a producer's sequence number
    before it stores the batch, so after a crash in between it answers the retry "duplicate", which the client
    counts as acknowledged (measured: 32 of 7,238 acknowledged events gone over 5 kills). A plain producer's retry
    is stored, perhaps twice: at least once, like every delivery here. One request in flight keeps the order.
    """
    order = {"max.in.flight.requests.per.connection": 1} if on_s3 else {"enable.idempotence": True}
    return Producer({"bootstrap.servers": bootstrap, **order, "acks": "all",
                     "linger.ms": 1, "message.timeout.ms": 4000, **overrides})


def publish(producer: Producer, events: Iterable[Event | Notification | Record], timeout: float = 10) -> None:
    """Send events (and dead letters) and wait until the broker has acknowledged every one, or raise."""
    failures = []
    for event in events:
        value, headers = (event.value, event.headers) if isinstance(event, Record) else (event.to_json(), None)
        producer.produce(event.topic, value, key=event.key, headers=headers,
                         on_delivery=lambda err, msg: failures.extend([err] if err else []))
    if producer.flush(timeout) or failures:
        raise KafkaException(failures[0] if failures else "flush timed out")


class AsyncPublisher:
    """Lets an asyncio server await the broker's acknowledgement of each message.

    The delivery reports are collected on the event loop itself, every millisecond while any is awaited.
    A polling thread would have to take the GIL from the server for every report: profiled under load,
    that thread and the switching cost the gateway more than the produce calls themselves.
    """

    def __init__(self, producer: Producer):
        self.producer = producer
        self.awaited = 0
        self._wake = asyncio.Event()
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    @property
    def poller(self) -> asyncio.Task:
        """The task that collects the delivery reports, for the server to watch: without it nothing is acknowledged."""
        return self._poller

    async def _poll(self) -> None:
        while True:
            try:
                self.producer.poll(0)  # runs the delivery callbacks, here on the loop
            except Exception:
                log.exception("polling the producer failed; polling on")
            if self.awaited:
                await asyncio.sleep(0.001)
            else:
                await self._wake.wait()
                self._wake.clear()

    async def send(self, topic: str, key: str, value: bytes, timeout: float) -> None:
        acked = asyncio.get_running_loop().create_future()
        self.producer.produce(topic, value, key=key,  # BufferError if the queue is full
                              on_delivery=lambda err, msg: _settle(acked, err))
        self.awaited += 1
        self._wake.set()
        try:
            await asyncio.wait_for(acked, timeout)
        finally:
            self.awaited -= 1

    def close(self) -> None:
        self._poller.cancel()
        self.producer.flush(2)


def _settle(acked: asyncio.Future, err) -> None:
    if acked.done():  # timed out already
        return
    if err is None:
        acked.set_result(None)
    else:
        acked.set_exception(KafkaException(err))


# A transactional job's reader: only committed transactions, and a sign at the end of each partition.
READ_COMMITTED: dict[str, Any] = {"isolation.level": "read_committed", "enable.partition.eof": True}


def consumer(bootstrap: str, group: str, waits: dict = FAST_CONSUMER, **overrides) -> Consumer:
    """A client that reads with `group`'s offsets. It joins no group unless it subscribes (see `member`).

    `auto.offset.reset=earliest`: where a group has never committed, it starts at the beginning of the log.
    That is this kit's choice, so a service started after the first orders still sees them; Kafka's default
    is `latest`, which would skip them.
    """
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                     "auto.offset.reset": "earliest", **waits, **overrides})


def member(settings: Settings, group: str, **overrides) -> Consumer:
    """A consumer for the service loop: a group member on Apache Kafka, a plain client on tansu.

    A member is static (`group.instance.id`): restarted within the session timeout, it takes its partitions
    back without a rebalance. Its `client.id` names the process in the broker's view of the group.
    """
    if not settings.consumer_groups:
        return consumer(settings.kafka_bootstrap_servers, group, waiting(settings), **overrides)
    return Consumer({**member_config(settings, group), **overrides})


def member_config(settings: Settings, group: str) -> dict:
    identity = f"{group}-{settings.instance}"
    return {"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group, "group.instance.id": identity,
            "client.id": identity, "enable.auto.commit": False, "auto.offset.reset": "earliest", **LONG_POLL,
            **GROUP_MEMBER[settings.group_protocol],
            **(CLUSTER_CLASSIC if settings.replicas > 1 and settings.group_protocol == "classic" else {})}


class Membership:
    """Whether this member is in its group now, from librdkafka's own statistics (once a second).

    "up" and "steady": it has a coordinator and its assignment, possibly empty (an idle member is in the group
    too). Read here rather than asked of the broker's admin API, which can abort the asking process (see
    `describe_groups`).
    """

    def __init__(self):
        self.joined = False

    def config(self) -> dict:
        return {"statistics.interval.ms": 1000, "stats_cb": self._read}

    def _read(self, stats: str) -> None:
        group = json.loads(stats).get("cgrp", {})
        self.joined = group.get("state") == "up" and group.get("join_state") == "steady"


def owned_partitions(topics: Iterable[str], partitions: int, instance: int, instances: int) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for topic in topics for p in range(partitions) if p % instances == instance]


def assign_from_committed(consumer: Consumer, partitions: list[TopicPartition]) -> list[TopicPartition]:
    """Resume where this group left off; from the beginning where it never committed. Returns the committed."""
    committed = consumer.committed(partitions, timeout=10)
    consumer.assign([TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                     for tp in committed])
    return committed


class Ownership(Protocol):
    def take(self, source: Consumer, topics: list[str]) -> None:
        """Start reading `topics`, each partition from this group's committed offset."""

    def admit(self, source: Consumer, messages: list) -> list:
        """The messages to handle now, of those consumed."""

    def rewind(self, source: Consumer, messages: list) -> None:
        """Read a failed batch again: seek back to its first message on each partition."""


class GroupMembership:
    """Apache Kafka: subscribe, and let the group coordinator share the partitions among the members."""

    def take(self, source: Consumer, topics: list[str]) -> None:
        source.subscribe(topics, on_revoke=commit_before_revoke, on_lost=forget_lost)

    def admit(self, source: Consumer, messages: list) -> list:
        return messages

    def rewind(self, source: Consumer, messages: list) -> None:
        rewind(source, messages)


class ExplicitOwnership:
    """tansu: instance i of n owns the partitions p with p % n == i, resumed from the group's committed offsets,
    read without holes (gaps.py: tansu 0.6 can skip a batch)."""

    def __init__(self, partitions: int, instance: int, instances: int):
        self.partitions, self.instance, self.instances = partitions, instance, instances
        self.gaps = GapGuard()

    def take(self, source: Consumer, topics: list[str]) -> None:
        owned = owned_partitions(topics, self.partitions, self.instance, self.instances)
        self.gaps.expect(assign_from_committed(source, owned))

    def admit(self, source: Consumer, messages: list) -> list:
        return self.gaps.admit(source, messages)

    def rewind(self, source: Consumer, messages: list) -> None:
        self.gaps.expect(rewind(source, messages))


def ownership(settings: Settings) -> Ownership:
    if settings.consumer_groups:
        return GroupMembership()
    return ExplicitOwnership(settings.partitions, settings.instance, settings.instances)


def commit_before_revoke(source: Consumer, partitions: list[TopicPartition]) -> None:
    """Partitions move to another member: commit what this one handled, so the next starts right after it.

    The loop calls `consume` only between batches, after each batch's commit, so this usually finds nothing
    new to commit; it matters when a batch failed and was rewound, or a future loop commits less often.
    """
    try:
        source.commit(offsets=[tp for tp in source.position(partitions) if tp.offset >= 0], asynchronous=False)
    except KafkaException as error:
        if error.args[0].code() != KafkaError._NO_OFFSET:
            log.warning("commit on revoke failed: %s", error)


def forget_lost(source: Consumer, partitions: list[TopicPartition]) -> None:
    """The session expired (its coordinator died, or this member stalled): the partitions may be another's now.

    Nothing is committed. The commit would be refused, and for a static member fatally: measured here, killing the
    Kafka node that coordinated the groups left every service dead with FENCED_INSTANCE_ID from a commit made on
    revoke. The next owner starts from the last commit and redoes a batch at most; the handlers are idempotent.
    """
    log.warning("lost %d partitions (the group session expired): not committing", len(partitions))


def describe_groups(bootstrap: str, groups: Iterable[str], timeout: float = 5) -> dict[str, dict]:
    """The broker's view of each group: its state, its protocol, and which member owns which partitions.

    Asked in a worker process, never in the caller's: librdkafka 2.16 aborts the whole process when a
    coordinator request of the admin API fails mid-way, e.g. on a dropped connection (confluentinc/librdkafka
    #4605; the fix, #5397, is not released). It happened here, under load, and took the test runner with it.
    A broker killed on purpose (notebook 04) must not take a notebook's kernel along.
    """
    global _worker
    _worker = _worker or ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_leave_without_goodbyes)
    try:
        return _worker.submit(_describe_here, bootstrap, list(groups), timeout).result(timeout + 30)
    except BrokenProcessPool:
        _worker = None
        raise KafkaException(KafkaError(KafkaError._FAIL, "the group view's worker crashed (librdkafka #4605); "
                                                          "ask again")) from None
    except RuntimeError as error:  # the broker's answer, in words (see _describe_here)
        raise KafkaException(KafkaError(KafkaError._FAIL, str(error))) from None


_worker: ProcessPoolExecutor | None = None
_admins: dict[str, AdminClient] = {}


def _leave_without_goodbyes() -> None:
    """The worker exits at once, its clients undestroyed: destroying one whose broker is gone can wait forever.

    Seen (gdb): the worker's exit stuck in rd_kafka_destroy_app, from an AdminClient of `_admins` whose broker a
    test had stopped; the caller, which waits for its worker at exit, hung with it after its tests had passed.
    """
    atexit.register(os._exit, 0)


def _describe_here(bootstrap: str, groups: list[str], timeout: float) -> dict[str, dict]:
    admin = _admins.setdefault(bootstrap, AdminClient({"bootstrap.servers": bootstrap, **QUIET}))
    views = {}
    for group, future in admin.describe_consumer_groups(list(groups), request_timeout=timeout).items():
        try:
            description = future.result()
        except KafkaException as error:  # cimpl's classes do not pickle back to the caller: send the words
            raise RuntimeError(str(error.args[0])) from None
        views[group] = {
            "state": description.state.name, "protocol": description.type.name.lower(),
            "members": [{"client": m.client_id, "instance": m.group_instance_id, "host": m.host,
                         "partitions": sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions)}
                        for m in description.members]}
    return views


def unread(bootstrap: str, group: str, topics: Iterable[str], partitions: int, on_s3: bool = False,
           timeout: float = 30) -> int:
    """How many events of `topics` lie past `group`'s committed offsets, counted by reading them to the end.

    Read, not computed: tansu reports a partition's end (its high watermark) a batch short. This client only
    assigns itself the partitions, so it neither joins the group nor commits anything.
    """
    reader = consumer(bootstrap, group, ON_S3_CONSUMER if on_s3 else FAST_CONSUMER, **{"enable.partition.eof": True})
    try:
        assign_from_committed(reader, [TopicPartition(t, p) for t in topics for p in range(partitions)])
        count, deadline = 0, time.monotonic() + timeout
        at_end: set[tuple] = set()  # (topic, partition) of each that said "end"
        while len(at_end) < len(reader.assignment()):  # every partition has said "end" at least once
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {list(topics)} to the end in {timeout} s")
            for message in reader.consume(1000, timeout=0.2):
                if (error := message.error()) is None:
                    count += 1
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add((message.topic(), message.partition()))
        return count
    finally:
        reader.close()


class StopFlag:
    """Set by SIGTERM or SIGINT; the loop finishes its batch, commits and closes."""

    def __init__(self):
        self.stopped = False
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def stop(self, *_):
        self.stopped = True


def heartbeat_file(home: Path, group: str, instance: int) -> Path:
    return home / "run" / f"{group}-{instance}.alive"


def run_consumer(settings: Settings, group: str, topics: list[str],
                 handle: Callable[[list[Event]], Iterable[Event | Notification]], batch_size: int = 500) -> None:
    """Consume, handle a batch, publish what it produced and its dead letters, then commit. Until SIGTERM.

    A batch that fails is rewound and tried again. `Postponed` (an outage) is retried for as long as it lasts;
    after `handler_attempts` other failures in a row, its events are handled one at a time and the one that
    still fails is dead-lettered (`isolate`), so a bug costs one order, not the partition.
    """
    stop = StopFlag()
    membership = Membership()
    source = member(settings, group, **(membership.config() if settings.consumer_groups else {}))
    producer = reliable_producer(settings.kafka_bootstrap_servers, settings.broker_on_s3)
    owner = ownership(settings)
    owner.take(source, topics)
    joined = (lambda: membership.joined) if settings.consumer_groups else (lambda: True)  # explicit: owned at once
    heartbeat = heartbeat_file(settings.home, group, settings.instance)
    log.info("consuming %s as %s instance %d (%s)", topics, group, settings.instance,
             "group member" if settings.consumer_groups else f"owns p % {settings.instances} == {settings.instance}")
    failures = 0  # how many times in a row the batch at the head of the partitions has failed
    try:
        while not stop.stopped:
            if joined():
                heartbeat.touch()  # `flashsale status` reads this: looping, and in its group
            messages = owner.admit(source, [m for m in next_batch(source, batch_size) if not failed(m)])
            if not messages:
                continue
            try:
                decoded, dead = decode_or_dead_letter(messages)
                if failures < settings.handler_attempts:
                    out = handle([event for _, event in decoded])
                else:
                    out, more_dead = isolate(handle, decoded, settings.handler_attempts)
                    dead += more_dead
                publish(producer, [*dead, *out])  # dead letters too: nothing is committed until they are stored
                source.commit(offsets=after(messages), asynchronous=False)  # what was handled: no more
                failures = 0
            except Exception as error:
                if isinstance(error, Postponed):
                    log.warning("batch postponed: %s", error)
                else:
                    failures += 1
                    log.exception("batch failed (%d in a row; from %d, its events are handled one at a time and "
                                  "the one that fails is dead-lettered); it will be retried",
                                  failures, settings.handler_attempts)
                owner.rewind(source, messages)
                time.sleep(0.5)
    finally:
        source.close()
        producer.flush(5)
        log.info("stopped cleanly" if stop.stopped else "stopped by an error")


def failed(message) -> bool:
    """An error in place of a message: end of partition is news to nobody; others are logged, and a fatal one
    (a fenced member, say) stops the process, so `status` shows it down instead of a member that reads nothing."""
    error = message.error()
    if error is None:
        return False
    if error.code() != KafkaError._PARTITION_EOF:
        log.error("consumer error: %s", error)
        if error.fatal():
            raise SystemExit(f"fatal consumer error, stopping: {error}")
    return True


def next_batch(source: Consumer, batch_size: int, wait: float = 0.1) -> list:
    """The first message as soon as it comes, with whatever else has already arrived.

    `consume(batch_size, timeout)` alone waits the whole timeout to fill the batch: at 200 orders/s that held
    every batch 100 ms at each of the five hops of an order (measured: 239 ms end to end, 10 ms with this).
    """
    first = source.consume(1, timeout=wait)
    return first + source.consume(batch_size - 1, timeout=0) if first else first


def rewind(source: Consumer, messages) -> list[TopicPartition]:
    """Seek back to the first message of the failed batch on each partition; returns where it sought."""
    first: dict[tuple[str, int], int] = {}
    for m in messages:
        first.setdefault((m.topic(), m.partition()), m.offset())
    positions = [TopicPartition(topic, partition, offset) for (topic, partition), offset in first.items()]
    for position in positions:
        source.seek(position)
    return positions


def after(messages) -> list[TopicPartition]:
    """The offsets to commit once `messages` are handled: each partition's last one, plus one."""
    last = {(m.topic(), m.partition()): m.offset() for m in messages}  # a partition's come in order: the last wins
    return [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in last.items()]

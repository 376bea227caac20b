"""What is asked of the broker rather than of a topic's stream: does it answer, are the topics there, who is in
each consumer group; and how to read partitions to their end, which every reader of the kit does one way.
"""
import atexit
import multiprocessing
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from flashsale.adapters.kafka.consume import assign_from_committed, consumer
from flashsale.brokers import Config
from flashsale.events import TOPICS, dead_letter_topic
from flashsale.net import port_open
from flashsale.readable import Readable

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


SALE_TOPICS = (*TOPICS, *(dead_letter_topic(topic) for topic in TOPICS))  # and their dead-letter topics


def ensure_topics(bootstrap: str, partitions: int, replicas: int = 1, timeout: float = 10,
                  topics: Iterable[str] = SALE_TOPICS) -> None:
    """Create the topics (the sale's and their dead-letter topics) with `TOPIC_CONFIG`; never rely on auto-creation.

    With several replicas (three Kafka nodes) an acks=all write must reach all but one of them before it is
    acknowledged (`min.insync.replicas`): one node may die without losing it; with two down, no write is.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=timeout).topics
    config = {**TOPIC_CONFIG, **({"min.insync.replicas": str(replicas - 1)} if replicas > 1 else {})}
    new = [NewTopic(t, num_partitions=partitions, replication_factor=replicas, config=config)
           for t in topics if t not in existing]
    for future in (admin.create_topics(new, request_timeout=timeout).values() if new else []):
        try:
            future.result(timeout)
        except KafkaException as error:  # made meanwhile by another starter: what we wanted
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


@dataclass(frozen=True)
class Member(Readable):
    client: str  # its client.id: `inventory-1` is instance 1 of the inventory service
    instance: str | None  # its group.instance.id, when it is a static member
    host: str
    partitions: tuple[tuple[str, int], ...]  # (topic, partition) it holds: none for an idle member


@dataclass(frozen=True)
class GroupView(Readable):
    """The broker's view of one consumer group."""
    state: str
    protocol: str  # "classic" or "consumer" (KIP-848)
    members: tuple[Member, ...]


def describe_groups(bootstrap: str, groups: Iterable[str], timeout: float = 5) -> dict[str, GroupView]:
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


# The worker process (and, inside it, one admin client per broker), made on first use and kept: asking for a group
# view once a second (the dashboard) must not start a Python process each time.
_worker: ProcessPoolExecutor | None = None
_admins: dict[str, AdminClient] = {}


def _leave_without_goodbyes() -> None:
    """The worker exits at once, its clients undestroyed: destroying one whose broker is gone can wait forever.

    Seen (gdb): the worker's exit stuck in rd_kafka_destroy_app, from an AdminClient of `_admins` whose broker a
    test had stopped; the caller, which waits for its worker at exit, hung with it after its tests had passed.
    """
    atexit.register(os._exit, 0)


def _describe_here(bootstrap: str, groups: list[str], timeout: float) -> dict[str, GroupView]:
    admin = _admins.setdefault(bootstrap, AdminClient({"bootstrap.servers": bootstrap, **QUIET}))
    views = {}
    for group, future in admin.describe_consumer_groups(list(groups), request_timeout=timeout).items():
        try:
            description = future.result()
        except KafkaException as error:  # cimpl's classes do not pickle back to the caller: send the words
            raise RuntimeError(str(error.args[0])) from None
        views[group] = GroupView(description.state.name, description.type.name.lower(), tuple(
            Member(m.client_id, m.group_instance_id, m.host,
                   tuple(sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions)))
            for m in description.members))
    return views


def read_to_end(reader: Consumer, timeout: float | None = 30, batch: int = 1000,
                wait_s: float = 0.2) -> Iterator[list[Message]]:
    """The messages of `reader`'s assigned partitions, a batch at a time, until each partition has said "end".

    The end is the broker's word, not a number read beforehand: the reader needs `enable.partition.eof`, and a
    partition is at its end when the last thing it said was that (a message after it starts it again). A read
    of tansu by its high watermark would stop short: it reports the first offset of a partition's last record
    batch + 1. For a read_committed reader the end is the last stable offset, before any open transaction.
    """
    at_end: set[tuple[str, int]] = set()
    deadline = None if timeout is None else time.monotonic() + timeout
    while len(at_end) < len(reader.assignment()):
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{sorted({tp.topic for tp in reader.assignment()})} not read to the end in "
                               f"{timeout} s")
        messages = []
        for message in reader.consume(batch, timeout=wait_s):
            key = (str(message.topic()), int(message.partition() or 0))
            if (error := message.error()) is None:
                at_end.discard(key)
                messages.append(message)
            elif error.code() == KafkaError._PARTITION_EOF:
                at_end.add(key)
            elif error.fatal():
                raise KafkaException(error)
        if messages:
            yield messages


def unread(bootstrap: str, group: str, topics: Iterable[str], partitions: int, waits: Config,
           timeout: float = 30, enough: int | None = None) -> int:
    """How many events of `topics` lie past `group`'s committed offsets, counted by reading them to the end; or,
    with `enough`, as soon as that many are counted (a log still growing mid-sale may have no end to reach in time),
    or as many as were counted when `timeout` ran out: the caller asked "at least `enough`?", and this answers no.

    This client only assigns itself the partitions, so it neither joins the group nor commits anything. `waits`:
    the broker's (`BrokerProfile.reading`). A 5 ms fetch wait against durable tansu holding 8,000 events, 150 more
    arriving a second, counted 7 events in 10 s; its profile's 100 ms counted 77 in 0.3 s (2026-12-07).
    """
    reader = consumer(bootstrap, group, waits, **{"enable.partition.eof": True})
    counted = 0
    try:
        assign_from_committed(reader, [TopicPartition(t, p) for t in topics for p in range(partitions)])
        for messages in read_to_end(reader, timeout):
            counted += len(messages)
            if enough is not None and counted >= enough:
                break
        return counted
    except TimeoutError:
        if enough is None:
            raise
        return counted
    finally:
        reader.close()

"""Consumers: how one is configured, how it takes its partitions (the broker profile says which way), and how the
loop reads a batch and commits after it.

- On Apache Kafka, a service instance is a member of its consumer group (`subscribe`): the group coordinator
  hands out the partitions and moves them when a member joins, leaves or dies. The classic protocol by default,
  KIP-848 as a setting (Settings.group_protocol says why).
- On tansu, whose group coordinator wedges under churn (measured; see "Consumer groups, and tansu" in the
  README), instance i of n owns the partitions p with p % n == i and commits under the same group id; and
  because tansu 0.6 can skip a batch in a fetch, it reads a partition's offsets without holes (gaps.py).
"""
import json
import logging
from collections.abc import Iterable
from typing import Any, Protocol, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from flashsale.adapters.gaps import GapGuard
from flashsale.brokers import FAST_CONSUMER, BrokerProfile, Config, choose
from flashsale.settings import Settings

log = logging.getLogger(__name__)

# A transactional job's reader: only committed transactions, and a sign at the end of each partition.
READ_COMMITTED: dict[str, Any] = {"isolation.level": "read_committed", "enable.partition.eof": True}

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


def consumer(bootstrap: str, group: str, waits: Config = FAST_CONSUMER, **overrides: Any) -> Consumer:
    """A client that reads with `group`'s offsets. It joins no group unless it subscribes (see `member`).

    `auto.offset.reset=earliest`: where a group has never committed, it starts at the beginning of the log.
    That is this kit's choice, so a service started after the first orders still sees them; Kafka's default
    is `latest`, which would skip them.
    """
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                     "auto.offset.reset": "earliest", **waits, **overrides})


def member_config(settings: Settings, group: str, profile: BrokerProfile | None = None) -> dict[str, Any]:
    """A service instance's consumer: a static member of `group` where the broker shares partitions out, else a
    plain client that waits as its broker needs (the profile's `waiting`).

    A member is static (`group.instance.id`): restarted within the session timeout, it takes its partitions
    back without a rebalance. Its `client.id` names the process in the broker's view of the group.
    """
    profile = profile or choose(settings)
    plain = {"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group, "enable.auto.commit": False,
             "auto.offset.reset": "earliest"}
    if not profile.groups:
        return {**plain, **profile.waiting}
    identity = f"{group}-{settings.instance}"
    return {**plain, "group.instance.id": identity, "client.id": identity, **profile.waiting,
            **GROUP_MEMBER[settings.group_protocol],
            **(CLUSTER_CLASSIC if settings.replicas > 1 and settings.group_protocol == "classic" else {})}


def member(settings: Settings, group: str, **overrides: Any) -> Consumer:
    """A consumer for a service loop: a group member on Apache Kafka, a plain client on tansu."""
    return Consumer({**member_config(settings, group), **overrides})


class Membership:
    """Whether this member is in its group now, from librdkafka's own statistics (once a second).

    "up" and "steady": it has a coordinator and its assignment, possibly empty (an idle member is in the group
    too). Read here rather than asked of the broker's admin API, which can abort the asking process (see
    `admin.describe_groups`).
    """

    def __init__(self) -> None:
        self.joined = False

    def config(self) -> dict[str, Any]:
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


C = TypeVar("C", contravariant=True)  # what an owner acts on: a Consumer (a unit test's fake, for the loop's)


class Ownership(Protocol[C]):
    def take(self, source: C, topics: list[str]) -> None:
        """Start reading `topics`, each partition from this group's committed offset."""

    def admit(self, source: C, messages: list[Message]) -> list[Message]:
        """The messages to handle now, of those consumed."""

    def rewind(self, source: C, messages: list[Message]) -> None:
        """Read a failed batch again: seek back to its first message on each partition."""


class GroupMembership:
    """Apache Kafka: subscribe, and let the group coordinator share the partitions among the members."""

    def take(self, source: Consumer, topics: list[str]) -> None:
        source.subscribe(topics, on_revoke=commit_before_revoke, on_lost=forget_lost)

    def admit(self, source: Consumer, messages: list[Message]) -> list[Message]:
        return messages

    def rewind(self, source: Consumer, messages: list[Message]) -> None:
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

    def admit(self, source: Consumer, messages: list[Message]) -> list[Message]:
        return self.gaps.admit(source, messages)

    def rewind(self, source: Consumer, messages: list[Message]) -> None:
        self.gaps.expect(rewind(source, messages))


def ownership(settings: Settings, profile: BrokerProfile | None = None) -> Ownership[Consumer]:
    """How this instance takes its partitions, as its broker's profile says."""
    if (profile or choose(settings)).groups:
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


def rewind(source: Consumer, messages: list[Message]) -> list[TopicPartition]:
    """Seek back to the first message of the failed batch on each partition; returns where it sought."""
    first: dict[tuple[str, int], int] = {}
    for m in messages:
        first.setdefault((str(m.topic()), int(m.partition() or 0)), int(m.offset() or 0))
    positions = [TopicPartition(topic, partition, offset) for (topic, partition), offset in first.items()]
    for position in positions:
        source.seek(position)
    return positions

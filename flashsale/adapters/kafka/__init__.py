"""Kafka's edges, one job a module:

admin    does the broker answer, the topics (created once), the groups' view, reading partitions to their end
produce  the reliable producer, a publish that waits for the broker, the gateway's asynchronous publisher
consume  a consumer's configuration, and how a service instance takes its partitions (the broker profile says)
doze     an idle consumer sleeps until a producer of the stack rings (tansu, whose idle fetches are dear)
loop     the one consumer loop every service runs: consume, handle, publish, commit
stopping how a loop stops: a signal sets its stop, and ends a wait for events at once

The notebooks reach them as `kafka.<name>`: `lab.show(kafka.run_consumer)` shows the loop itself.
"""
from flashsale.adapters.dead_letters import Postponed, decode_or_dead_letter
from flashsale.adapters.kafka.admin import (
    QUIET,
    TOPIC_CONFIG,
    GroupView,
    Member,
    answers,
    describe_groups,
    ensure_topics,
    read_to_end,
    unread,
)
from flashsale.adapters.kafka.consume import (
    CLUSTER_SESSION_MS,
    GROUP_MEMBER,
    READ_COMMITTED,
    ExplicitOwnership,
    GroupMembership,
    Membership,
    Ownership,
    assign_from_committed,
    commit_before_revoke,
    consumer,
    member,
    member_config,
    owned_partitions,
    ownership,
    rewind,
)
from flashsale.adapters.kafka.doze import Bell, Dozing
from flashsale.adapters.kafka.loop import (
    ConsumerLoop,
    FatalConsumerError,
    Interrupted,
    KafkaSink,
    KafkaSource,
    StopSignal,
    Timer,
    after,
    failed,
    heartbeat_file,
    kafka_loop,
)
from flashsale.adapters.kafka.produce import AsyncPublisher, delivered_to, flush, publish, reliable_producer

run_consumer = ConsumerLoop.run  # the loop, by the name notebooks 04 and 13 show it under

__all__ = [
    "CLUSTER_SESSION_MS", "GROUP_MEMBER", "QUIET", "READ_COMMITTED", "TOPIC_CONFIG", "AsyncPublisher", "Bell",
    "ConsumerLoop", "Dozing", "Interrupted",
    "ExplicitOwnership", "FatalConsumerError", "GroupMembership", "GroupView", "KafkaSink", "KafkaSource", "Member",
    "Membership", "Ownership", "Postponed", "StopSignal", "Timer", "after", "answers", "assign_from_committed",
    "commit_before_revoke", "consumer", "decode_or_dead_letter", "delivered_to", "describe_groups", "ensure_topics",
    "failed", "flush",
    "heartbeat_file", "kafka_loop", "member", "member_config", "owned_partitions", "ownership", "publish",
    "read_to_end", "reliable_producer", "rewind", "run_consumer", "unread",
]

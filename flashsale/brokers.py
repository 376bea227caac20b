"""Which broker a stack runs, and everything that follows from it: one profile per broker, chosen once (`choose`).

A broker decides how a consumer waits for events, how a service instance gets its partitions, how a producer
keeps an acknowledged event once, whether the broker comes back empty after a restart, and whether it compiles
its code while it runs (a benchmark then warms it up). Every layer asks the profile; none asks which broker it is.
A new broker, or a new way to run one, is one entry in PROFILES; the launcher starts the embedded ones by their
`engine` (stack/components.py).
"""
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from flashsale.settings import Settings

Config = Mapping[str, Any]  # librdkafka settings

# How a consumer waits for events depends on the broker.
# tansu, in memory. Measured: these make a consumer start in ~1 s and deliver in ~4 ms (defaults: ~23 s, ~250 ms).
# tansu answers an empty fetch only when its wait is over, even if an event arrives meanwhile (measured: allowed
# 100 ms, end-to-end p50 at 100 orders/s went from 62 to 186 ms), so the wait is short and the client asks again.
# Its memory storage scans a partition's record batches on every fetch that returns data, so a consumer that
# keeps up (one small fetch after another) kept it at 100% CPU at 1,100 orders/s. With one message waiting
# locally, the client fetches again only 10 ms later: end-to-end p99 at 1,100 orders/s went from 0.6-1.5 s to
# ~0.16 s, and tansu from ~100% to ~60% of a core.
FAST_CONSUMER: Config = MappingProxyType({"session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                                          "fetch.wait.max.ms": 5, "queued.min.messages": 1,
                                          "fetch.queue.backoff.ms": 10})
# tansu on S3 storage (the default) lists a partition's objects for every fetch. Allowed 5 ms, a busy
# broker answers empty, and consumers that ask again at once keep it busy: measured, every consumer stalled for
# good once the topics held a few thousand events. Allowed 100 ms, it answers with the events.
ON_S3_CONSUMER: Config = MappingProxyType({**FAST_CONSUMER, "fetch.wait.max.ms": 100})
# Apache Kafka: a long poll. The broker holds a fetch until an event arrives (`fetch.min.bytes`, 1) or 500 ms pass,
# so a consumer that has caught up asks twice a second instead of 200 times, and still gets each event as it is
# written. Measured on one node with the services idle: the stack's idle CPU fell from 29% to 8% of a core (Kafka's
# from 18% to 2%), and end to end at 100 orders/s p99 from 107-241 ms to 83-107 ms. Without tansu's queue backoff:
# librdkafka leaves a partition that has a message waiting locally out of its next fetch, and a fetch that waits
# 500 ms kept that partition's events waiting as long (measured: p99 598-636 ms at 100 orders/s).
LONG_POLL: Config = MappingProxyType({"fetch.wait.max.ms": 500})

# How an acknowledged event is stored once. Idempotent, on every broker that keeps its promise: the broker drops
# a retried batch it has stored already, so a retry neither doubles nor reorders anything.
IDEMPOTENT: Config = MappingProxyType({"enable.idempotence": True})
# Not idempotent on tansu's S3 storage, where that loses events: tansu 0.6 records a producer's sequence number
# before it stores the batch, so after a crash in between it answers the retry "duplicate", which the client
# counts as acknowledged (measured: 32 of 7,238 acknowledged events gone over 5 kills). A plain producer's retry
# is stored, perhaps twice: at least once, like every delivery here. One request in flight keeps the order.
ONE_IN_FLIGHT: Config = MappingProxyType({"max.in.flight.requests.per.connection": 1})


@dataclass(frozen=True)
class BrokerProfile:
    name: str
    family: Literal["tansu", "kafka"]  # what `flashsale status` calls it
    # How the launcher starts it (stack/components.py, by engine), or None: someone else runs it (docker, external)
    engine: Literal["tansu", "kafka"] | None
    storage: Literal["memory", "s3", "disk"]
    nodes: int
    waiting: Config  # how a consumer service waits for events
    reading: Config  # how a one-off reader waits: it wants the end of a topic soon, not the next event
    # Partitions shared out by the group coordinator (subscribe) on Apache Kafka; on tansu, whose coordinator
    # wedges under churn (measured; README, "Consumer groups, and tansu"), instance i of n owns p % n == i.
    groups: bool
    producer: Config  # how an acknowledged event is stored once
    # An idle consumer sleeps, its partitions paused, until a producer of the stack rings (adapters/kafka/doze.py):
    # tansu answers each fetch after its whole wait, so idle consumers kept it busy; Apache Kafka holds a fetch
    # until an event comes (a long poll), so its consumers wait in the fetch itself.
    dozes: bool
    forgets_on_restart: bool  # memory storage: it comes back empty, and knows no producer or group of before
    compiles: bool  # a JVM compiles its code as it runs: a benchmark warms it up with the load it measures
    promise: str = ""  # what a crash of the broker costs, in one sentence: `flashsale up` prints it

    @property
    def durable(self) -> bool:
        """A kill -9 of the broker loses no event it acknowledged: every accepted order survives it."""
        return not self.forgets_on_restart


FORGETS = ("tansu in memory (--fast): it GIVES UP DURABILITY. A crash of the broker (kill -9) loses every "
           "accepted order it still held; `flashsale down`, then `flashsale up` without --fast, keeps them.")
KEEPS_ON_S3 = ("tansu on S3 storage (SeaweedFS), the default: a crash of the broker (kill -9) loses no accepted "
               "order. `--fast` starts in half the time and gives that up.")
KEEPS_ON_DISK = "Apache Kafka, its log on disk: a crash of the broker (kill -9) loses no accepted order."


def _tansu(name: str, storage: Literal["memory", "s3"], waiting: Config, producer: Config) -> BrokerProfile:
    memory = storage == "memory"
    return BrokerProfile(name, "tansu", "tansu", storage, 1, waiting, reading=waiting, groups=False,
                         producer=producer, dozes=True, forgets_on_restart=memory, compiles=False,
                         promise=FORGETS if memory else KEEPS_ON_S3)


def _kafka(name: str, engine: Literal["kafka"] | None, nodes: int) -> BrokerProfile:
    return BrokerProfile(name, "kafka", engine, "disk", nodes, LONG_POLL, reading=FAST_CONSUMER, groups=True,
                         producer=IDEMPOTENT, dozes=False, forgets_on_restart=False, compiles=True,
                         promise=KEEPS_ON_DISK)


PROFILES = {profile.name: profile for profile in (
    _tansu("tansu", "memory", FAST_CONSUMER, IDEMPOTENT),  # `--fast`: memory, and a crash loses what it held
    _tansu("tansu-s3", "s3", ON_S3_CONSUMER, ONE_IN_FLIGHT),  # the default
    _kafka("kafka", "kafka", 1),
    _kafka("kafka-3-nodes", "kafka", 3),
    # docker-compose.yml's Apache Kafka, or the user's own cluster (`--infra external`): not ours to start
    _kafka("external", None, 1),
)}


def choose(settings: "Settings") -> BrokerProfile:
    """The profile of the broker these settings name: the one place that turns settings into a broker."""
    if settings.infra != "embedded":
        return PROFILES["external"]
    if settings.broker == "kafka":
        return PROFILES["kafka" if settings.kafka_nodes == 1 else f"kafka-{settings.kafka_nodes}-nodes"]
    return PROFILES["tansu-s3" if settings.durable else "tansu"]

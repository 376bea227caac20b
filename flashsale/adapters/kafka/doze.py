"""A consumer that sleeps while the stack is quiet, and wakes when a producer of the stack rings: tansu's idle cost.

tansu answers a fetch only when its wait is over, so a consumer that has caught up asks again every
`fetch.wait.max.ms`, and on S3 storage every fetch lists the partitions' objects. Measured on this machine with five
idle consumers of six partitions each (2026-12-08): tansu took 7.0% of a core at a 100 ms wait, 1.9% at 500 ms,
1.0% at 1 s, and 0.0% with none. A longer wait would make every hop of an order that long.

So a consumer that has heard nothing for QUIET_S pauses its partitions (it fetches nothing at all) and waits on a
bell: a Redis channel that every producer of the stack rings once the broker has acknowledged what it wrote, at
most once every RING_S. A ring wakes every sleeper, which resumes where it stopped and stays awake for QUIET_S.
Measured: an event written and rung reached a sleeping consumer in 14-17 ms. A durable tansu stack idled at 2.8%
of a core instead of 10.9% (no race), and 3.1% instead of 9.5% after two races, its first order after a quiet
spell final in 219-424 ms instead of 216-273; the bench's idle stack read 2.6-2.9% (docs/benchmarks.md, 2026-12-08).

Why no event waits for a ring that never comes: a producer that writes an event has rung at most RING_S before
(or rings right after). A consumer asleep at that ring woke and stays awake QUIET_S > RING_S, past the event; one
awake at it keeps the ring unread, and reads it the moment it falls asleep, which wakes it at once.
A producer that does not ring (a notebook's own, kcat) is read at the next look, every LOOK_S.
The bell is a hint, never data: a consumer that cannot hear it (Redis down) stays awake, as before.
"""
import contextlib
import logging
import time
from collections.abc import Mapping

import redis
from confluent_kafka import OFFSET_END, Consumer, KafkaException, Message, TopicPartition

log = logging.getLogger(__name__)

CHANNEL = "flashsale:bell"
RING_S = 1.0  # a producer rings at most this often
QUIET_S = 3.0  # a consumer that heard nothing (no event, no ring) this long falls asleep; must exceed RING_S
LOOK_S = 3.0  # an asleep consumer still looks this often, for events of producers that do not ring
LOOK_WAIT_S = 0.15  # a look is one fetch: tansu answers an empty one after the S3 profile's 100 ms
TIMEOUTS = {"socket_timeout": 0.05, "socket_connect_timeout": 0.05}  # a frozen Redis holds a ring up 50 ms at most


class Bell:
    """A producer's side: ring after the broker acknowledged events, at most once every RING_S. A ring that fails
    is logged once per outage and costs a sleeper LOOK_S at most."""

    def __init__(self, client: redis.Redis, every_s: float = RING_S):
        self.client, self.every_s, self.rung, self.failing = client, every_s, -every_s, False

    @classmethod
    def at(cls, redis_url: str) -> "Bell":
        return cls(redis.Redis.from_url(redis_url, **TIMEOUTS))

    def ring(self) -> None:
        now = time.monotonic()
        if now - self.rung < self.every_s:
            return
        self.rung = now
        try:
            self.client.publish(CHANNEL, b"")
            self.failing = False
        except redis.RedisError as error:
            if not self.failing:
                log.warning("could not ring the bell (sleeping consumers look again within %g s): %s", LOOK_S, error)
            self.failing = True


class Dozing:
    """A consumer's side: what `consumer.consume(1, wait)` gives, but asleep while the stack is quiet."""

    def __init__(self, client: redis.Redis, quiet_s: float = QUIET_S, look_s: float = LOOK_S):
        self.client, self.quiet_s, self.look_s = client, quiet_s, look_s
        self.listening: redis.client.PubSub | None = None
        self.deaf = False  # said once per outage
        self.awake_until = time.monotonic() + quiet_s
        self.asleep_since: float | None = None
        self.stopped_at: list[TopicPartition] = []
        self.reading: Mapping[tuple[str, int], int] = {}  # the offset each partition delivers next: `follow`

    @classmethod
    def at(cls, redis_url: str) -> "Dozing":
        return cls(redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1))  # a frozen Redis:
        # the subscribe fails after 1 s, and the consumer stays awake, rather than wait for it with the loop

    def follow(self, reading: Mapping[tuple[str, int], int]) -> "Dozing":
        """Wake where `reading` says each partition goes on: a GapGuard's `next`, which every tansu reader keeps
        (adapters/gaps.py). The consumer's own position will not do: after a seek, librdkafka reports none until a
        message comes (measured), and a consumer woken by a ring it had nothing for would go back to the start."""
        self.reading = reading
        return self

    def heard(self) -> None:
        """An event came: stay awake QUIET_S more."""
        self.awake_until = time.monotonic() + self.quiet_s

    def consume(self, consumer: Consumer, wait: float) -> list[Message]:
        if self.asleep_since is None and time.monotonic() >= self.awake_until:
            self._fall_asleep(consumer)
        if self.asleep_since is not None:
            woken = self._rung(wait)
            if woken is None:
                return []
            self._wake(consumer, looking=not woken)
            if not woken:  # a look: one fetch, and asleep again unless it brings something
                messages = consumer.consume(1, timeout=LOOK_WAIT_S)
                if messages:
                    self.heard()
                return messages
        messages = consumer.consume(1, timeout=wait)
        if messages:
            self.heard()
        return messages

    def close(self) -> None:
        self._stop_listening()
        self.client.close()

    def _stop_listening(self) -> None:
        """Drop the subscription (its connection may be broken already: nothing to say of it)."""
        if self.listening is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                self.listening.close()
        self.listening = None

    def _fall_asleep(self, consumer: Consumer) -> None:
        try:
            if self.listening is None:
                self.listening = self.client.pubsub(ignore_subscribe_messages=True)
                self.listening.subscribe(CHANNEL)
        except redis.RedisError as error:
            if not self.deaf:
                log.warning("cannot hear the bell, staying awake until it is back: %s", error)
            self.deaf = True
            self._stop_listening()
            self.heard()
            return
        if self.deaf:
            log.info("the bell is back: asleep while the stack is quiet")
            self.deaf = False
        try:
            self.stopped_at = resume_points(consumer, self.reading)
        except KafkaException as error:
            log.warning("cannot tell where to wake, staying awake: %s", error)
            self.heard()
            return
        consumer.pause(consumer.assignment())
        self.asleep_since = time.monotonic()

    def _rung(self, wait: float) -> bool | None:
        """True: rung (or deaf now), so awake; False: time to look; None: still asleep after `wait`."""
        assert self.listening is not None and self.asleep_since is not None
        try:
            if self.listening.get_message(timeout=min(wait, self._until_look())) is not None:
                while self.listening.get_message(timeout=0) is not None:  # every ring read so far is answered now
                    pass
                return True
        except redis.RedisError as error:
            log.warning("lost the bell, awake until it is back: %s", error)
            self._stop_listening()
            return True
        return False if self._until_look() <= 0 else None

    def _until_look(self) -> float:
        assert self.asleep_since is not None
        return max(0.0, self.asleep_since + self.look_s - time.monotonic())

    def _wake(self, consumer: Consumer, looking: bool) -> None:
        consumer.resume(consumer.assignment())
        # A resumed partition fetches at librdkafka's next scan, up to 1 s later (measured); a seek fetches at once
        # (14-17 ms).
        for position in self.stopped_at:
            consumer.seek(position)
        self.asleep_since = None
        self.awake_until = time.monotonic() + (0 if looking else self.quiet_s)


def resume_points(consumer: Consumer, reading: Mapping[tuple[str, int], int]) -> list[TopicPartition]:
    """Where each partition goes on when the consumer wakes: the offset it delivers next (what it had fetched ahead is
    dropped at the pause); where it has read nothing yet, where it was assigned, and the end as it is now: a
    partition resumed at OFFSET_END looks the end up again, and skips what came while it slept (measured)."""
    points = []
    for start in consumer.assignment():
        offset = reading.get((start.topic, start.partition), start.offset)
        if offset == OFFSET_END:
            offset = consumer.get_watermark_offsets(start, timeout=5)[1]
        points.append(TopicPartition(start.topic, start.partition, offset))
    return points

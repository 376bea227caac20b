"""Producers: the reliable one every service writes with, a publish that waits for the broker, and the gateway's
asynchronous publisher. A write counts once the broker has acknowledged it, never before: every flush is checked.
"""
import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from flashsale.adapters.dead_letters import Record
from flashsale.adapters.kafka.doze import Bell
from flashsale.brokers import IDEMPOTENT, Config
from flashsale.events import Event, Notification

log = logging.getLogger(__name__)


def reliable_producer(bootstrap: str, delivery: Config = IDEMPOTENT, /, **overrides: Any) -> Producer:
    """acks=all, and stored once as the broker allows (`delivery`: the broker profile's `producer`).

    acks=all waits for every in-sync replica. On the lab's one broker that is the leader alone (acks=1, one copy);
    in production it takes replication (factor 3) and min.insync.replicas=2 to mean two copies.
    """
    return Producer({"bootstrap.servers": bootstrap, **delivery, "acks": "all", "linger.ms": 1,
                     "message.timeout.ms": 4000, **overrides})


def flush(producer: Producer, timeout: float, what: str = "messages") -> None:
    """Wait until the broker has acknowledged everything produced, or raise: what is left after `timeout` may be
    lost, and saying nothing would count it as written."""
    left = producer.flush(timeout)
    if left:
        raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, f"{left} {what} not acknowledged in {timeout} s"))


def publish(producer: Producer, events: Iterable[Event | Notification | Record], timeout: float = 10) -> None:
    """Send events (and dead letters) and wait until the broker has acknowledged every one, or raise."""
    failures: list[KafkaError] = []
    for event in events:
        value, headers = (event.value, event.headers) if isinstance(event, Record) else (event.to_json(), None)
        producer.produce(event.topic, value, key=event.key, headers=headers,
                         on_delivery=lambda err, msg: failures.extend([err] if err else []))
    flush(producer, timeout, "events")
    if failures:
        raise KafkaException(failures[0])


class AsyncPublisher:
    """Lets an asyncio server await the broker's acknowledgement of each message.

    The delivery reports are collected on the event loop itself, every millisecond while any is awaited.
    A polling thread would have to take the GIL from the server for every report: profiled under load,
    that thread and the switching cost the gateway more than the produce calls themselves.
    """

    def __init__(self, producer: Producer, bell: Bell | None = None):
        self.producer, self.bell = producer, bell
        self.awaited = 0
        self._wake = asyncio.Event()
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    @property
    def poller(self) -> asyncio.Task[None]:
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
        if self.bell is not None:  # acknowledged: sleeping consumers may now wake to read it (doze.py)
            self.bell.ring()

    def close(self) -> None:
        """Stop polling; whatever is still unacknowledged was answered 503 (each send awaits its own), so it is
        only logged: a request that had not been answered yet when the server stopped."""
        self._poller.cancel()
        left = self.producer.flush(2)
        if left:
            log.error("%d messages were not acknowledged by the broker when the server stopped", left)


def _settle(acked: "asyncio.Future[None]", err: KafkaError | None) -> None:
    if acked.done():  # timed out already
        return
    if err is None:
        acked.set_result(None)
    else:
        acked.set_exception(KafkaException(err))


def delivered_to(producer: Producer, messages: Iterable[tuple[str, bytes | None, bytes | str | None]],
                 timeout: float = 10) -> list[Message]:
    """Produce (topic, value, key) triples and return the broker's acknowledgements (each with its partition and
    offset), once every one is acknowledged; raise if one is not."""
    acknowledged: list[Message] = []
    failures: list[KafkaError] = []

    def report(err: KafkaError | None, msg: Message) -> None:
        (failures.append(err) if err else acknowledged.append(msg))

    for topic, value, key in messages:
        producer.produce(topic, value, key=key, on_delivery=report)
    flush(producer, timeout)
    if failures:
        raise KafkaException(failures[0])
    return acknowledged

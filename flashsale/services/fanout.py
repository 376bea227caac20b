"""Every gateway reads all of notification.events and hands each message to its WebSocket clients.

No consumer group work here: each gateway assigns itself every partition from
the end (it only cares about what happens from now on) and commits nothing.
"The end" is also checked by time: tansu 0.6 reports a high watermark that
points at the first record of the last batch, not past it, so OFFSET_END there
starts up to a whole batch early and would replay old updates (of an old sale,
even) to every browser after a gateway restart.
"""
import asyncio
import json
import threading
import time
import uuid

from confluent_kafka import OFFSET_END, TIMESTAMP_NOT_AVAILABLE, TopicPartition

from flashsale.adapters import kafka
from flashsale.events import NOTIFICATION_EVENTS, ORDER_UPDATE

QUEUE_LIMIT = 1000  # a client this far behind misses messages rather than slowing everyone


class Fanout:
    def __init__(self, bootstrap: str, partitions: int, on_s3: bool = False):
        self.bootstrap, self.partitions, self.on_s3 = bootstrap, partitions, on_s3
        self.subscribers: dict[asyncio.Queue, str | None] = {}
        self._running = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self._running = loop, True
        self._thread = threading.Thread(target=self._consume, daemon=True, name="fanout")
        self._thread.start()

    def stop(self) -> None:
        self._running = False
        self._thread.join(timeout=2)

    def subscribe(self, user_id: str | None) -> asyncio.Queue:
        queue = asyncio.Queue(QUEUE_LIMIT)
        self.subscribers[queue] = user_id
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.subscribers.pop(queue, None)

    def _consume(self) -> None:
        started_ms = time.time() * 1000
        consumer = kafka.consumer(self.bootstrap, f"gateway-fanout-{uuid.uuid4()}", self.on_s3)
        consumer.assign([TopicPartition(NOTIFICATION_EVENTS, p, OFFSET_END) for p in range(self.partitions)])
        try:
            while self._running:
                for message in consumer.consume(500, timeout=0.2):
                    if not message.error() and _is_news(message, started_ms):
                        self.loop.call_soon_threadsafe(self._deliver, message.value())
        finally:
            consumer.close()

    def _deliver(self, raw: bytes | None) -> None:
        try:
            message = json.loads(raw)
            owner = message["data"].get("userId") if message.get("type") == ORDER_UPDATE else None
        except (TypeError, ValueError, KeyError, AttributeError):
            return  # not a notification (a poison message): nothing to tell, and the fan-out goes on
        text = raw.decode()
        for queue, user_id in list(self.subscribers.items()):
            if owner is None or user_id is None or user_id == owner:
                if not queue.full():
                    queue.put_nowait(text)


def _is_news(message, started_ms: float) -> bool:
    """Produced after this gateway started; a message without a timestamp gets the benefit of the doubt."""
    kind, timestamp = message.timestamp()
    return kind == TIMESTAMP_NOT_AVAILABLE or timestamp >= started_ms

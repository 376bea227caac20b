"""Every gateway reads all of notification.events and hands each message to its WebSocket clients.

No consumer group work here: each gateway assigns itself every partition from
the end (it only cares about what happens from now on) and commits nothing.
"The end" is also checked by time: tansu 0.6 reports a high watermark that
points at the first record of the last batch, not past it, so OFFSET_END there
starts up to a whole batch early and would replay old updates (of an old sale,
even) to every browser after a gateway restart. And it reads without holes
(adapters/gaps.py): tansu 0.6 can skip a batch in a fetch, and a buyer would
never hear of an order whose update was in it. Apache Kafka never leaves one.
"""
import asyncio
import json
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka import OFFSET_END, TIMESTAMP_NOT_AVAILABLE, Consumer, Message, TopicPartition

from flashsale.adapters import kafka
from flashsale.adapters.gaps import GapGuard
from flashsale.brokers import FAST_CONSUMER, Config
from flashsale.events import NOTIFICATION_EVENTS, ORDER_UPDATE, STOCK_UPDATE

QUEUE_LIMIT = 1000  # order updates a client may fall behind by; past that it loses the oldest
POLL_S = 0.002  # how often the loop looks for new messages when there were none
# After QUIET_S with no message the loop stops looking every POLL_S: a thread waits in librdkafka (GIL released)
# for the first message and hands the loop what came. Idle, the 2 ms look cost the gateway 500 wake-ups a second
# (see docs/benchmarks.md, idle CPU); busy, the loop reads on its own as before, with no thread for the GIL.
QUIET_S = 1.0
QUIET_WAIT_S = 0.5
# Stock figures go out to everybody at most this often, the newest one each time. Under load the notification
# service sends one per batch, a hundred a second and more; sent on to 550 sockets each, they took the gateway
# down (measured: end-to-end p90 1.7 s at 1,100 orders/s, 0.2 s with this).
STOCK_EVERY_S = 0.05


class Subscriber:
    """One browser: all its order updates, in order, and only the newest stock figure per product.

    A stock figure replaces the one not yet sent. So 1,000 browsers under a storm of stock updates cost one
    send each per turn, not one per update, and a slow browser never holds stale figures.
    """

    def __init__(self, user_id: str | None):
        self.user_id = user_id
        self.updates: deque[str] = deque(maxlen=QUEUE_LIMIT)
        self.stock: dict[str, str] = {}  # productId -> the newest stock_update, not yet sent
        self._ready = asyncio.Event()

    def put(self, text: str, stock_of: str | None = None) -> None:
        if stock_of is None:
            self.updates.append(text)
        else:
            self.stock[stock_of] = text
        self._ready.set()

    async def next(self) -> str:
        while not self.updates and not self.stock:
            self._ready.clear()
            await self._ready.wait()
        if self.updates:
            return self.updates.popleft()
        return self.stock.pop(next(iter(self.stock)))


class Fanout:
    """Reads notification.events on the server's own event loop: no thread to fight the server for the GIL while
    messages come; after a quiet second, one thread waits for the next, so an idle gateway sleeps."""

    def __init__(self, bootstrap: str, partitions: int, waits: Config = FAST_CONSUMER,
                 dozing: kafka.Dozing | None = None):
        self.bootstrap, self.partitions, self.waits = bootstrap, partitions, waits  # waits: the broker profile's
        self.dozing = dozing  # where idle fetches are dear (tansu), it sleeps while the stack is quiet
        self.by_user: dict[str | None, set[Subscriber]] = defaultdict(set)  # None: those who watch every order
        self.newest_stock: dict[str, str] = {}  # productId -> the newest figure not yet broadcast
        self._broadcast_due, self._last_broadcast = False, 0.0

    def start(self) -> asyncio.Task:
        """Start reading; the task is returned for the server to hold and watch (it should never end)."""
        self._task = asyncio.get_running_loop().create_task(self._consume())
        return self._task

    def stop(self) -> None:
        self._task.cancel()

    def subscribe(self, user_id: str | None) -> Subscriber:
        subscriber = Subscriber(user_id)
        self.by_user[user_id].add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.by_user[subscriber.user_id].discard(subscriber)
        if not self.by_user[subscriber.user_id]:
            del self.by_user[subscriber.user_id]

    async def _consume(self) -> None:
        started_ms = time.time() * 1000
        consumer = kafka.consumer(self.bootstrap, f"gateway-fanout-{uuid.uuid4()}", self.waits)
        consumer.assign([TopicPartition(NOTIFICATION_EVENTS, p, OFFSET_END) for p in range(self.partitions)])
        gaps = GapGuard()  # each partition starts at its first message, wherever OFFSET_END put it
        if self.dozing is not None:
            self.dozing.follow(gaps.next)
        waiter = ThreadPoolExecutor(1, thread_name_prefix="fanout-wait")  # the quiet wait's one thread
        loop, heard = asyncio.get_running_loop(), time.monotonic()
        try:
            while True:
                if time.monotonic() - heard < QUIET_S:
                    messages = consumer.consume(500, timeout=0)  # only what the client already fetched: no wait
                else:  # quiet: wait in librdkafka, off the loop, and wake for the first message
                    messages = await loop.run_in_executor(waiter, self._wait, consumer)
                    messages += consumer.consume(499, timeout=0) if messages else []
                if messages:
                    heard = time.monotonic()
                    if self.dozing is not None:
                        self.dozing.heard()
                for message in gaps.admit(consumer, [m for m in messages if not m.error()]):
                    if self.by_user and _is_news(message, started_ms):  # nobody listening: nothing to parse
                        self._deliver(message.value())
                await asyncio.sleep(0 if len(messages) == 500 or time.monotonic() - heard >= QUIET_S else POLL_S)
        finally:
            waiter.shutdown(wait=True)  # a wait in flight ends within QUIET_WAIT_S: only then may the client close
            consumer.close()
            if self.dozing is not None:
                self.dozing.close()

    def _wait(self, consumer: Consumer) -> list[Message]:
        """The quiet wait, in the waiter thread: for the first message, or asleep until the stack rings."""
        if self.dozing is not None:
            return self.dozing.consume(consumer, QUIET_WAIT_S)
        return consumer.consume(1, timeout=QUIET_WAIT_S)

    def _deliver(self, raw: bytes | None) -> None:
        if raw is None:
            return  # a tombstone: nothing to tell
        try:
            message = json.loads(raw)
            data = message["data"]
            owner = data.get("userId") if message.get("type") == ORDER_UPDATE else None
            stock_of = str(data.get("productId")) if message.get("type") == STOCK_UPDATE else None
        except (TypeError, ValueError, KeyError, AttributeError, RecursionError):  # the last: JSON ~1,000 deep
            return  # not a notification (a poison message): nothing to tell, and the fan-out goes on
        text = raw.decode()
        if stock_of is not None:
            self.newest_stock[stock_of] = text
            if not self._broadcast_due:  # at once after a quiet spell, else when the last one is old enough
                self._broadcast_due = True
                loop = asyncio.get_running_loop()
                loop.call_at(max(loop.time(), self._last_broadcast + STOCK_EVERY_S), self._broadcast_stock)
            return
        # An order update goes to its buyer (and to whoever watches every order), not past all 1,000 sockets.
        watchers = self.by_user.get(None, set())
        audience = self.everyone() if owner is None else self.by_user.get(owner, set()) | watchers
        for subscriber in audience:
            subscriber.put(text)

    def everyone(self) -> Iterator[Subscriber]:
        return (subscriber for group in self.by_user.values() for subscriber in group)

    def _broadcast_stock(self) -> None:
        self._broadcast_due, self._last_broadcast = False, asyncio.get_running_loop().time()
        for product, text in self.newest_stock.items():
            for subscriber in self.everyone():
                subscriber.put(text, stock_of=product)
        self.newest_stock.clear()


def _is_news(message: Message, started_ms: float) -> bool:
    """Produced after this gateway started; a message without a timestamp gets the benefit of the doubt."""
    kind, timestamp = message.timestamp()
    return kind == TIMESTAMP_NOT_AVAILABLE or timestamp >= started_ms

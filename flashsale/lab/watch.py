"""The dashboard's eyes: a thread that tails the topics and polls the stack. It never touches the display.

It keeps the latest facts under a lock; the dashboard takes a `snapshot()`
whenever it redraws. Every read is guarded: a server that is down (the lesson
of notebook 04) leaves the last known value in place instead of an error.
"""
import json
import threading
import time
import uuid
from collections import Counter, deque
from typing import Any

import psycopg
from confluent_kafka import OFFSET_END, TopicPartition
from redis import Redis

from flashsale import events as ev
from flashsale.adapters import kafka, postgres, redis as redis_adapter
from flashsale.lab import replicas
from flashsale.lab.cost import Cost
from flashsale.lab.groups import QUIET, LagMeter
from flashsale.lab.tap import Pipeline
from flashsale.sale import current_sale, sale_counts
from flashsale.stack.control import Stack
from flashsale.stack.processes import alive

POLL_S, STATUS_S = 0.25, 1.0
RATE_S = 2.0  # events a second, averaged over the last two seconds


class Rates:
    """Events a second per topic and per event type, over the last `window_s` seconds."""

    def __init__(self, window_s: float = RATE_S):
        self.window_s = window_s
        self.seen: deque[tuple[float, str, str | None]] = deque()  # (seconds, topic, type)

    def see(self, topic: str, kind: str | None, now: float) -> None:
        self.seen.append((now, topic, kind))

    def per_s(self, now: float) -> dict[str, float]:
        while self.seen and self.seen[0][0] <= now - self.window_s:
            self.seen.popleft()
        counts = Counter(topic for _, topic, _ in self.seen) + Counter(kind for _, _, kind in self.seen if kind)
        return {name: round(n / self.window_s, 1) for name, n in counts.items()}


def event_type(value: bytes | None) -> str | None:
    """The `type` of an event or a notification, or None if the message is no JSON object."""
    try:
        return json.loads(value or b"").get("type")
    except (ValueError, TypeError, AttributeError):
        return None


class Watcher(threading.Thread):
    def __init__(self, stack: Stack):
        super().__init__(daemon=True, name="dashboard-watcher")
        self.stack, self.settings = stack, stack.wired()
        self.lock, self.running, self.version, self.t0 = threading.Lock(), True, 0, time.monotonic()
        self.stock: deque[tuple[float, int]] = deque(maxlen=1200)  # (seconds since start, available stock)
        self.counts: dict[str, Any] = {}
        self.lag: list[dict[str, Any]] = []
        self.up: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.feed: deque[tuple] = deque(maxlen=12)  # the latest events: (type, order, topic, partition, offset)
        self.clock = Pipeline()
        self.accept_ms: list[float] = []
        self._pg: psycopg.Connection | None = None
        self._redis: Redis | None = None
        self.rates: dict[str, Any] = {}
        self.counter, self.cost = Rates(), Cost()
        self.cpu: Any = None  # the last figure measured
        self.replicas: list[dict] = []  # order.events' leaders and in-sync replicas, on three Kafka nodes
        self._admin = replicas.admin(stack) if stack.settings.replicas > 1 else None

    def snapshot(self) -> dict:
        with self.lock:
            return {"version": self.version, "stock": list(self.stock), "counts": dict(self.counts),
                    "lag": list(self.lag), "feed": list(self.feed), "up": dict(self.up),
                    "pipeline_ms": list(self.clock.ms), "accept_ms": list(self.accept_ms), "errors": dict(self.errors),
                    "rates": dict(self.rates), "cpu": self.cpu, "replicas": list(self.replicas)}

    def add_accepts(self, latencies_ms: list[float]) -> None:
        with self.lock:
            self.accept_ms += latencies_ms
            self.version += 1

    def stop(self) -> None:
        self.running = False
        self.join(timeout=10)

    def run(self) -> None:
        tail = kafka.consumer(self.settings.kafka_bootstrap_servers, f"lab-dashboard-{uuid.uuid4()}", **QUIET)
        tail.assign([TopicPartition(t, p, OFFSET_END) for t in ev.TOPICS for p in range(self.settings.partitions)])
        meter = LagMeter(self.settings, owners=True)  # each row also names the partition's owner
        next_poll = next_status = 0.0
        try:
            while self.running:
                self._guard("events", lambda: self._events(tail.consume(500, timeout=0.1)))
                now = time.monotonic()
                if now >= next_poll:
                    self._guard("sale", self._poll_sale)
                    self._guard("lag", lambda: self._set("lag", meter.read(timeout=1)))
                    self._set("rates", self.counter.per_s(time.monotonic()))
                    next_poll = now + POLL_S
                if now >= next_status:
                    self._guard("status", self._poll_status)
                    self._guard("cpu", self._poll_cpu)
                    if self._admin is not None:
                        self._guard("replicas", lambda: self._set(
                            "replicas", replicas.read(self._admin, [ev.ORDER_EVENTS], timeout=1)))
                    next_status = now + STATUS_S
        finally:
            tail.close()
            meter.close()

    def _guard(self, what: str, read) -> None:
        try:
            read()
            error = None
        except Exception as failure:  # noqa: BLE001 - a server may be down on purpose; keep watching
            error = f"{type(failure).__name__}: {failure}"[:200]
            if what == "sale":
                self._pg = self._redis = None  # reconnect next time
        with self.lock:
            if self.errors.get(what) != error:
                self.errors.pop(what, None) if error is None else self.errors.update({what: error})
                self.version += 1

    def _set(self, name: str, value) -> None:
        with self.lock:
            if getattr(self, name) != value:
                setattr(self, name, value)
                self.version += 1

    def _events(self, messages) -> None:
        now = time.monotonic()
        for m in messages:
            if m.error():
                continue
            self.counter.see(m.topic(), event_type(m.value()), now)
            if m.topic() == ev.NOTIFICATION_EVENTS:  # for the browsers: counted, not in the feed
                continue
            try:
                event = ev.Event.from_json(m.value())
            except ValueError:
                continue
            with self.lock:
                self.feed.appendleft((event.type, event.orderId[:8], m.topic(), m.partition(), m.offset()))
                self.clock.see(event)
                self.version += 1

    def _poll_sale(self) -> None:
        if self._pg is None or self._redis is None:
            self._pg = postgres.connect(self.settings.database_url)
            self._redis = redis_adapter.connect(self.settings.redis_url)
        sale = current_sale(self._redis)
        if sale is None:
            return
        counts = sale_counts(self._pg, self._redis, sale).as_dict()
        now = round(time.monotonic() - self.t0, 2)
        with self.lock:
            if counts != self.counts or not self.stock or now - self.stock[-1][0] >= 1:  # a point a second at least
                self.counts = counts
                self.stock.append((now, counts["availableStock"]))
                self.version += 1

    def _poll_status(self) -> None:
        self._set("up", {name: alive(info.pid) for name, info in self.stack.processes().items()})

    def _poll_cpu(self) -> None:
        """CPU per order of each component over the last seconds; the last figure stays while no order settles."""
        processes = {info.pid: info.service or name for name, info in self.stack.processes().items()
                     if alive(info.pid)}
        with self.lock:
            settled = self.counts.get("confirmed", 0) + self.counts.get("cancelled", 0)
        self.cost.sample(processes, settled, time.monotonic())
        figure = self.cost.per_order()
        if figure is None and self.cpu:  # nothing settles now: keep the last busy figure, and say so
            figure = {**self.cpu, "live": False}
        self._set("cpu", figure if figure is None or "live" in figure else {**figure, "live": True})

"""Tap a topic: a fresh consumer reads it, from the beginning or its last N events, and commits nothing.

Reading changes nothing for the services: the tap has a throwaway group id,
assigns itself the partitions and never commits. The log stays as it was.
"""
import json
import uuid
from datetime import datetime

import pandas as pd
from confluent_kafka import Message, TopicPartition

from flashsale import events as ev
from flashsale.adapters import kafka
from flashsale.lab.groups import QUIET
from flashsale.stack.control import Stack


def read(bootstrap: str, topic: str, partitions: int, last: int | None = None, timeout: float = 30) -> list[Message]:
    """Every message of `topic` (or about the last `last` of each partition), until the broker says it has no more.

    About: `last` counts back from the end the broker reports, which tansu reports a batch short."""
    client = kafka.consumer(bootstrap, f"lab-tap-{uuid.uuid4()}", **{"enable.partition.eof": True, **QUIET})
    try:
        starts = []
        for p in range(partitions):
            low, end = client.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            starts.append(TopicPartition(topic, p, max(low, end - last) if last else low))
        client.assign(starts)
        return [m for batch in kafka.read_to_end(client, timeout, wait_s=0.1) for m in batch]
    finally:
        client.close()


def frame(messages: list[Message]) -> pd.DataFrame:
    """One row per message: where it sits in the log, and what it says."""
    rows = []
    for m in messages:
        try:
            body = json.loads(m.value() or b"")  # a tombstone (no value) is not JSON either
        except ValueError:
            body = {"type": "<not JSON>"}
        data = body.get("data") or {}  # a notification carries its facts in `data`
        rows.append({"time": pd.Timestamp(m.timestamp()[1], unit="ms", tz="UTC"), "topic": m.topic(),
                     "partition": m.partition(), "offset": m.offset(), "type": body.get("type"),
                     "orderId": body.get("orderId") or data.get("orderId"),
                     "userId": body.get("userId") or data.get("userId"),
                     "status": data.get("status"), "reason": body.get("reason") or data.get("reason"),
                     "availableStock": body.get("availableStock", data.get("availableStock")),
                     "saleId": body.get("saleId")})
    columns = ["time", "topic", "partition", "offset", "type", "orderId", "userId", "status", "reason",
               "availableStock", "saleId"]
    return pd.DataFrame(rows, columns=columns).sort_values(["time", "topic", "partition", "offset"], ignore_index=True)


def tap(stack: Stack, topic: str = ev.ORDER_EVENTS, last: int | None = None) -> pd.DataFrame:
    """The events of `topic`, oldest first: all of them, or the last `last`."""
    settings = stack.wired()
    table = frame(read(settings.kafka_bootstrap_servers, topic, settings.partitions, last))
    return table.tail(last).reset_index(drop=True) if last else table


def trail(stack: Stack, order_id: str) -> pd.DataFrame:
    """The audit trail of one order: every event about it, on every topic, in the order they happened."""
    tables = [tap(stack, topic) for topic in ev.TOPICS]
    everything = pd.concat(tables, ignore_index=True)
    mine = everything[everything.orderId == order_id]
    return mine.sort_values(["time", "offset"]).reset_index(drop=True).dropna(axis="columns", how="all")


def events(stack: Stack, topic: str = ev.ORDER_EVENTS, sale_id: int | None = None) -> list[ev.Event]:
    """The decoded events of `topic`, in log order per partition; only those of sale `sale_id` if given."""
    settings = stack.wired()
    decoded = []
    for m in read(settings.kafka_bootstrap_servers, topic, settings.partitions):
        try:
            event = ev.Event.from_json(m.value() or b"")
        except ValueError:
            continue  # a poison message: the services dead-letter it, a replay skips it
        if sale_id is None or event.saleId == sale_id:
            decoded.append(event)
    return decoded


class Pipeline:
    """Pairs each order's `order.created` (gateway) with its final event (orders): how long the pipeline took.

    Its clock starts when the gateway writes `order.created`, not at the buyer's click: the buyer's wait in line
    before it (the larger part of the accept latency under a crowd) is not in it. From the click to the decision is
    the end-to-end latency, which `flashsale bench` measures."""

    def __init__(self):
        self.created: dict[str, datetime] = {}
        self.ms: list[float] = []

    def see(self, event: ev.Event) -> None:
        at = datetime.fromisoformat(event.occurredAt)
        if event.type == ev.ORDER_CREATED:
            self.created.setdefault(event.orderId, at)
        elif event.type in (ev.ORDER_CONFIRMED, ev.ORDER_CANCELLED) and event.orderId in self.created:
            self.ms.append((at - self.created.pop(event.orderId)).total_seconds() * 1000)


def pipeline_ms(stack: Stack, sale_id: int) -> list[float]:
    """For every decided order of the sale: ms from the gateway's order.created to order.confirmed/cancelled."""
    clock = Pipeline()
    for event in events(stack, ev.ORDER_EVENTS, sale_id):
        clock.see(event)
    return clock.ms

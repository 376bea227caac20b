"""The dead-letter logic of the consumer loop, on stand-in messages: what becomes a dead letter, what never does.

The real broker's part (a refused dead letter, a handler that always fails) is in
tests/integration/test_dead_letters.py.
"""
from dataclasses import dataclass

import pytest
from confluent_kafka import KafkaError, KafkaException

from flashsale import events as ev
from flashsale.adapters import kafka
from flashsale.adapters.dead_letters import Postponed, Record, decode_or_dead_letter, isolate


@dataclass
class Message:
    """The part of confluent_kafka.Message the loop reads."""
    _value: bytes | None
    _offset: int
    _key: bytes = b"k"

    def topic(self): return ev.ORDER_EVENTS
    def partition(self): return 2
    def offset(self): return self._offset
    def key(self): return self._key
    def value(self): return self._value


def event(order_id: str) -> ev.Event:
    return ev.Event(type=ev.ORDER_CREATED, orderId=order_id, userId="u", productId="P", quantity=1, saleId=1)


def test_a_message_that_does_not_decode_is_returned_as_a_dead_letter_saying_why_and_where_from():
    good = Message(event("a").to_json(), 7)
    decoded, dead = decode_or_dead_letter([good, Message(b"not json", 8), Message(None, 9)])
    assert [e.orderId for _, e in decoded] == ["a"] and decoded[0][0] is good
    assert [(d.topic, d.value) for d in dead] == [("order.events.dlq", b"not json"), ("order.events.dlq", None)]
    assert dead[0].headers["topic"] == ev.ORDER_EVENTS and dead[0].headers["partition"] == "2"
    assert dead[0].headers["offset"] == "8" and "Invalid JSON" in dead[0].headers["error"]


def test_isolating_a_failed_batch_dead_letters_only_the_event_that_keeps_failing():
    calls = []

    def handle(batch):
        calls.append([e.orderId for e in batch])
        if batch[0].orderId == "bad":
            raise ValueError("no such column")
        return [batch[0].next(ev.ORDER_SAVED)]

    decoded = [(Message(event(o).to_json(), i), event(o)) for i, o in enumerate(["a", "bad", "b"])]
    out, dead = isolate(handle, decoded, attempts=3, pause=0)
    assert [e.orderId for e in out] == ["a", "b"]
    assert calls == [["a"], ["bad"], ["bad"], ["bad"], ["b"]]
    assert [(d.topic, d.key, d.headers["offset"]) for d in dead] == [("order.events.dlq", b"k", "1")]
    assert dead[0].headers["error"] == "ValueError: no such column" and dead[0].value == decoded[1][0].value()


def test_an_event_that_fails_once_and_then_succeeds_is_not_dead_lettered():
    failures = iter([RuntimeError("blip")])

    def handle(batch):
        if error := next(failures, None):
            raise error
        return []

    assert isolate(handle, [(Message(b"", 0), event("a"))], attempts=2, pause=0) == ([], [])


def test_an_outage_is_never_dead_lettered_however_often_it_comes():
    def handle(batch):
        raise Postponed("the payment provider is unavailable")

    with pytest.raises(Postponed):
        isolate(handle, [(Message(b"", 0), event("a"))], attempts=1, pause=0)


class RefusingProducer:
    """A producer whose broker refuses every message to a dead-letter topic: the delivery report says so."""

    def __init__(self):
        self.reports = []

    def produce(self, topic, value, key=None, headers=None, on_delivery=None):
        error = KafkaError(KafkaError.TOPIC_EXCEPTION) if topic.endswith(".dlq") else None
        self.reports.append((on_delivery, error, headers))

    def flush(self, timeout):
        for on_delivery, error, _ in self.reports:
            on_delivery(error, None)
        return 0


def test_publish_raises_when_a_dead_letter_is_not_acknowledged_so_the_loop_commits_nothing():
    producer = RefusingProducer()
    letter = Record("order.events.dlq", b"k", b"poison", {"error": "bad"})
    with pytest.raises(KafkaException):
        kafka.publish(producer, [letter, event("a")])
    assert [headers for _, _, headers in producer.reports] == [{"error": "bad"}, None]

"""The event vocabulary: JSON form, topics, and the chain from one event to the next."""
import json

import pytest
from pydantic import ValidationError

from flashsale import events as ev


def created() -> ev.Event:
    return ev.Event(type=ev.ORDER_CREATED, orderId="o-1", userId="alice", productId="P", quantity=1, saleId=3)


def test_json_form_has_the_contract_fields():
    message = json.loads(created().to_json())
    assert {"eventId", "type", "occurredAt", "orderId", "userId", "productId", "quantity"} <= set(message)
    assert message["occurredAt"].endswith("Z")
    assert "reason" not in message  # absent fields are left out, not null


def test_topics_follow_the_type():
    assert created().topic == ev.ORDER_EVENTS
    assert created().next(ev.STOCK_RESERVED).topic == ev.INVENTORY_EVENTS
    assert created().next(ev.STOCK_RELEASED).topic == ev.INVENTORY_EVENTS
    assert created().next(ev.PAYMENT_FAILED).topic == ev.PAYMENT_EVENTS
    assert created().next(ev.ORDER_RESERVED).topic == ev.ORDER_EVENTS
    assert ev.dead_letter_topic(ev.ORDER_EVENTS) == "order.events.dlq"


def test_next_keeps_the_order_and_makes_a_new_event():
    first = created()
    second = first.next(ev.STOCK_INSUFFICIENT, reason="SOLD_OUT", availableStock=0)
    assert (second.orderId, second.userId, second.saleId, second.quantity) == ("o-1", "alice", 3, 1)
    assert second.eventId != first.eventId and second.reason == "SOLD_OUT"
    assert second.key == "o-1"


def test_round_trip_and_poison():
    assert ev.Event.model_validate_json(created().to_json()) .orderId == "o-1"
    with pytest.raises(ValidationError):
        ev.Event.model_validate_json(b'{"type": "order.created"}')
    with pytest.raises(ValidationError):
        ev.Event.model_validate_json(b"\xff\xfe not json")


def test_version_2_carries_the_price_from_order_to_payment():
    first = created().model_copy(update={"priceCents": 99_900})
    assert json.loads(first.to_json())["version"] == ev.VERSION == 2
    assert first.next(ev.STOCK_RESERVED).next(ev.PAYMENT_SUCCEEDED).priceCents == 99_900


def test_version_1_events_are_upcast_on_the_way_in_and_read_by_old_readers():
    v1 = {k: v for k, v in json.loads(created().to_json()).items() if k != "version"}
    event = ev.Event.from_json(json.dumps(v1))
    assert (event.version, event.priceCents, event.orderId) == (2, ev.V1_PRICE_CENTS, "o-1")
    assert "version" not in v1 and ev.upcast(ev.upcast(v1)) == ev.upcast(v1)
    new = ev.Event.from_json(created().model_copy(update={"priceCents": 5}).to_json())
    assert new.priceCents == 5  # a version 2 event is left as it is
    with pytest.raises(ValidationError):
        ev.Event.from_json(b"\xff\xfe not json")
    with pytest.raises(ValidationError):
        ev.Event.from_json(b"[1, 2]")

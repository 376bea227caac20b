"""The notification service's handler is a pure function: events in, browser messages out."""
from flashsale import events as ev
from flashsale.services.notifications import handle


def event(type_: str, order: str, **extra) -> ev.Event:
    return ev.Event(type=type_, orderId=order, userId=f"u-{order}", productId="P", quantity=1, saleId=1, **extra)


def test_order_states_become_order_updates():
    out = handle([event(ev.ORDER_SAVED, "a"), event(ev.ORDER_CONFIRMED, "a"),
                  event(ev.ORDER_CANCELLED, "b", reason="SOLD_OUT")])
    assert [(n.type, n.data["orderId"], n.data["status"], n.data["reason"]) for n in out] == [
        (ev.ORDER_UPDATE, "a", "PENDING", None), (ev.ORDER_UPDATE, "a", "CONFIRMED", None),
        (ev.ORDER_UPDATE, "b", "CANCELLED", "SOLD_OUT")]
    assert out[0].data["userId"] == "u-a" and out[0].topic == ev.NOTIFICATION_EVENTS


def test_one_stock_update_per_batch_with_the_lowest_stock():
    out = handle([event(ev.STOCK_RESERVED, "a", availableStock=7), event(ev.STOCK_RESERVED, "b", availableStock=5),
                  event(ev.STOCK_INSUFFICIENT, "c", reason="PER_USER_LIMIT", availableStock=6)])
    assert [(n.type, n.data) for n in out] == [(ev.STOCK_UPDATE, {"productId": "P", "saleId": 1, "availableStock": 5})]


def test_created_events_say_nothing():
    assert handle([event(ev.ORDER_CREATED, "a")]) == []

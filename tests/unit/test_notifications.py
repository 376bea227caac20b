"""The notification service's handler is a plain function: events in, browser messages out; the stock figure
is read from the decider's counter (here a dict) once per sale the batch touched."""
from flashsale import events as ev
from flashsale.services.notifications import handle


def event(type_: str, order: str, **extra) -> ev.Event:
    return ev.Event(type=type_, orderId=order, userId=f"u-{order}", productId="P", quantity=1, saleId=1, **extra)


def no_stock(sale: int) -> int:
    raise AssertionError("no stock figure was asked for")


def test_order_states_become_order_updates():
    out = handle([event(ev.ORDER_SAVED, "a"), event(ev.ORDER_RESERVED, "a"), event(ev.ORDER_CONFIRMED, "a"),
                  event(ev.ORDER_CANCELLED, "b", reason="PAYMENT_FAILED")], no_stock)
    assert [(n.type, n.data["orderId"], n.data["status"], n.data["reason"]) for n in out] == [
        (ev.ORDER_UPDATE, "a", "PENDING", None), (ev.ORDER_UPDATE, "a", "RESERVED", None),
        (ev.ORDER_UPDATE, "a", "CONFIRMED", None), (ev.ORDER_UPDATE, "b", "CANCELLED", "PAYMENT_FAILED")]
    assert out[0].data["userId"] == "u-a" and out[0].topic == ev.NOTIFICATION_EVENTS


def test_one_stock_update_per_batch_with_the_stock_as_the_decider_has_it_now():
    # A release after a failed payment makes the stock rise: no figure of the batch is sure to be the newest.
    out = handle([event(ev.STOCK_RESERVED, "a", availableStock=7), event(ev.STOCK_RESERVED, "b", availableStock=5),
                  event(ev.STOCK_RELEASED, "c", availableStock=6),
                  event(ev.STOCK_INSUFFICIENT, "d", reason="PER_USER_LIMIT", availableStock=6)], {1: 6}.__getitem__)
    assert [(n.type, n.data) for n in out] == [(ev.STOCK_UPDATE, {"productId": "P", "saleId": 1, "availableStock": 6})]


def test_created_events_say_nothing():
    assert handle([event(ev.ORDER_CREATED, "a")], no_stock) == []


def test_a_refund_after_an_expiry_tells_the_buyer_cancelled_payment_timeout_refunded():
    out = handle([event(ev.ORDER_CANCELLED, "late", reason="PAYMENT_TIMEOUT", refunded=True),
                  event(ev.ORDER_CANCELLED, "timed-out", reason="PAYMENT_TIMEOUT")], no_stock)
    assert [n.data for n in out] == [
        {"orderId": "late", "status": "CANCELLED", "reason": "PAYMENT_TIMEOUT", "userId": "u-late", "refunded": True},
        {"orderId": "timed-out", "status": "CANCELLED", "reason": "PAYMENT_TIMEOUT", "userId": "u-timed-out"}]

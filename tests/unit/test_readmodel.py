"""The orders read model folded from the deciders' events: the orders service's rule, in any order of topics."""
import random

from flashsale import events as ev
from flashsale.lab.readmodel import fold


def story(order: str, *types: str, reason: str | None = None) -> list[ev.Event]:
    created = ev.Event(type=ev.ORDER_CREATED, orderId=order, userId=f"u-{order}", productId="P", quantity=1, saleId=1)
    return [created, *(created.next(t, reason=reason if t in (ev.STOCK_INSUFFICIENT, ev.PAYMENT_FAILED) else None)
                       for t in types)]


def test_a_row_moves_forward_only_whatever_the_order_of_the_topics():
    events = (story("paid", ev.STOCK_RESERVED, ev.PAYMENT_SUCCEEDED)
              + story("declined", ev.STOCK_RESERVED, ev.PAYMENT_FAILED, reason=ev.PAYMENT_FAILED_REASON)
              + story("late", ev.STOCK_INSUFFICIENT, reason="SOLD_OUT") + story("waiting", ev.STOCK_RESERVED))
    expected = {"paid": ("CONFIRMED", None), "declined": ("CANCELLED", "PAYMENT_FAILED"),
                "late": ("CANCELLED", "SOLD_OUT"), "waiting": ("RESERVED", None)}

    for _ in range(20):
        shuffled = random.sample(events, len(events)) * 2  # any order, every event twice
        assert {order: (row["status"], row["reason"]) for order, row in fold(shuffled).items()} == expected


def test_the_orders_services_own_announcements_fold_to_nothing():
    created = story("a")[0]
    assert fold([created.next(ev.ORDER_CONFIRMED), created.next(ev.ORDER_CANCELLED, reason="SOLD_OUT")]) == {}

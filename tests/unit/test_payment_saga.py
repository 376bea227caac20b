"""The payment service's handler with a fake provider: a late charge is refunded, and an outage of the refunds
postpones the batch like one of the charges."""
import asyncio

import pytest

from flashsale import events as ev
from flashsale.adapters import psp
from flashsale.adapters.dead_letters import Postponed
from flashsale.services.payments import handle


class Provider:
    """Records charges and refunds; `down` answers Unavailable to everything."""

    def __init__(self, down: bool = False):
        self.down, self.charged, self.refunded = down, [], []

    async def charge(self, order_id: str, amount: int, key: str) -> dict:
        if self.down:
            raise psp.Unavailable("503")
        self.charged.append((order_id, key))
        return {"status": "succeeded"}

    async def refund(self, order_id: str, key: str) -> dict:
        if self.down:
            raise psp.Unavailable("503")
        self.refunded.append((order_id, key))
        return {"status": "refunded"}


def event(type_: str, order: str, **extra) -> ev.Event:
    return ev.Event(type=type_, orderId=order, userId="u", productId="P", quantity=1, saleId=1, **extra)


def test_a_refund_due_is_refunded_by_its_order_id_and_told_as_payment_refunded():
    provider = Provider()
    out = asyncio.run(handle(provider, [event(ev.REFUND_DUE, "late", reason="PAYMENT_TIMEOUT")], 100))
    assert provider.refunded == [("late", "late")] and provider.charged == []
    assert [(e.type, e.orderId, e.reason) for e in out] == [(ev.PAYMENT_REFUNDED, "late", "PAYMENT_TIMEOUT")]


def test_a_reservation_is_charged_however_old_its_event_the_deadline_is_the_orders_rows_to_decide():
    provider = Provider()
    old = event(ev.STOCK_RESERVED, "old", occurredAt="2020-01-01T00:00:00.000Z")
    out = asyncio.run(handle(provider, [old], 100))
    assert provider.charged == [("old", "old")] and [e.type for e in out] == [ev.PAYMENT_SUCCEEDED]


def test_refunds_wait_out_an_outage_like_charges_do(monkeypatch):
    monkeypatch.setattr("flashsale.services.payments.RETRY_FOR_S", 0.2)
    with pytest.raises(Postponed, match="1 orders wait"):
        asyncio.run(handle(Provider(down=True), [event(ev.REFUND_DUE, "late")], 100))

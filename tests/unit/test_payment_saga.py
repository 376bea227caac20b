"""The payment service's handler with a fake provider: a late charge is refunded, a reservation past the deadline
is not charged, and an outage of the refunds postpones the batch like one of the charges."""
import asyncio
from datetime import UTC, datetime, timedelta

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


def event(type_: str, order: str, age_s: float = 0, **extra) -> ev.Event:
    at = (datetime.now(UTC) - timedelta(seconds=age_s)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return ev.Event(type=type_, orderId=order, userId="u", productId="P", quantity=1, saleId=1, occurredAt=at,
                    **extra)


def test_a_refund_due_is_refunded_by_its_order_id_and_told_as_payment_refunded():
    provider = Provider()
    out = asyncio.run(handle(provider, [event(ev.REFUND_DUE, "late", reason="PAYMENT_TIMEOUT")], 100))
    assert provider.refunded == [("late", "late")] and provider.charged == []
    assert [(e.type, e.orderId, e.reason) for e in out] == [(ev.PAYMENT_REFUNDED, "late", "PAYMENT_TIMEOUT")]


def test_a_reservation_older_than_the_deadline_is_not_charged_and_a_younger_one_is():
    provider = Provider()
    out = asyncio.run(handle(provider, [event(ev.STOCK_RESERVED, "old", age_s=40),
                                        event(ev.STOCK_RESERVED, "young", age_s=5)], 100, deadline_s=30))
    assert provider.charged == [("young", "young")]
    assert [(e.type, e.orderId) for e in out] == [(ev.PAYMENT_SUCCEEDED, "young")]


def test_refunds_wait_out_an_outage_like_charges_do(monkeypatch):
    monkeypatch.setattr("flashsale.services.payments.RETRY_FOR_S", 0.2)
    with pytest.raises(Postponed, match="1 orders wait"):
        asyncio.run(handle(Provider(down=True), [event(ev.REFUND_DUE, "late")], 100))

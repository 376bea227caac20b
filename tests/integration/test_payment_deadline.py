"""The saga's deadline on a stack of its own (a 3 s deadline): an order the provider cannot pay in time is cancelled
PAYMENT_TIMEOUT and its unit goes back; a charge that succeeds after that is refunded once, and the buyer is told.
Every order ends CONFIRMED or CANCELLED, and the contract's invariants (7 and 8 among them) hold."""
import json
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition

from flashsale import events as ev
from flashsale.adapters import kafka, postgres, psp
from flashsale.harness.checks import Invariants, invariants, payments_done, settle
from flashsale.harness.load import run_buyers
from flashsale.lab import replay
from flashsale.settings import Settings
from flashsale.stack.control import Stack
from flashsale.stack.processes import free_port

DEADLINE_S = 3.0


@pytest.fixture(scope="module")
def saga():
    home = Path(tempfile.mkdtemp(prefix="flashsale-deadline-"))
    stack = Stack(Settings(home=home, gateway_port=free_port(), shop_port=free_port(), psp_port=free_port(),
                           payment_deadline_s=DEADLINE_S, payment_delay_ms=20))
    try:
        stack.up(timeout=180)
        yield stack
    finally:
        stack.down()


@pytest.fixture
def provider(saga):
    wired = saga.wired()
    yield lambda **change: psp.behaviour(wired.psp_url, wired.admin_token, **change)
    psp.behaviour(wired.psp_url, wired.admin_token, delayMs=wired.payment_delay_ms, failureRate=0, outageSeconds=0)


def settled(settings: Settings, sale_id: int, accepted: list[str], timeout: float = 90) -> Invariants:
    """The sale's invariants once they hold, or as they stand after `timeout`: a release or a refund comes a moment
    after the row it follows is final."""
    deadline = time.monotonic() + timeout
    while not (state := invariants(settings, sale_id, accepted)).ok and time.monotonic() < deadline:
        time.sleep(0.1)
    return state


def rows(settings: Settings, sale_id: int) -> list[tuple[str, str, str | None, bool]]:
    with postgres.connect(settings.database_url) as pg:
        return pg.execute("SELECT order_id, status, reason, refunded FROM orders WHERE sale_id = %s",
                          (sale_id,)).fetchall()


def told(settings: Settings, order_ids: set[str]) -> list[dict]:
    """The order updates the browsers were sent about these orders, read from notification.events."""
    reader = kafka.consumer(settings.kafka_bootstrap_servers, f"check-{uuid.uuid4()}", **{"enable.partition.eof": True})
    try:
        kafka.assign_from_committed(reader, [TopicPartition(ev.NOTIFICATION_EVENTS, p)
                                             for p in range(settings.partitions)])
        updates = [json.loads(m.value()) for batch in kafka.read_to_end(reader) for m in batch]
    finally:
        reader.close()
    return [u["data"] for u in updates if u["type"] == ev.ORDER_UPDATE and u["data"]["orderId"] in order_ids]


def test_a_provider_down_longer_than_the_deadline_expires_the_orders_and_gives_every_unit_back(saga, provider):
    wired, sale = saga.wired(), saga.reset(stock=20, per_user_limit=1)
    provider(outageSeconds=DEADLINE_S + 5)

    race = run_buyers("gateway", wired.gateway_url, buyers=40, product_id=sale.productId, progress=False)
    accepted = [b.order_id for b in race.accepted]
    assert settle(wired, accepted, timeout=60) is not None, "orders left waiting past the deadline"
    state = settled(wired, sale.saleId, accepted)
    late = {order for order, status, reason, _ in rows(wired, sale.saleId) if reason == "PAYMENT_TIMEOUT"}

    assert race.count(500, 502, 503, 504, 0) == 0, race.statuses()
    assert len(late) == 20, rows(wired, sale.saleId)  # every reserved unit: none could be paid in time
    assert (state.confirmed, state.availableStock, state.paid) == (0, 20, 0), state.as_dict()
    assert state.ok, state.as_dict()
    # Once the provider is back, payments charges what it held (it does not guess the deadline from an event's
    # time: the orders row decides), and every one of those late charges is refunded, once.
    assert payments_done(wired, timeout=90), "charges or refunds still under way"
    after = settled(wired, sale.saleId, accepted)
    assert {order: [c["status"] for c in psp.charges(wired.psp_url, order)] for order in late} == {
        order: ["refunded"] for order in late}
    assert (after.refunded, after.refundedTwice, after.paid, after.availableStock) == (20, 0, 0, 20), after.as_dict()
    assert after.ok, after.as_dict()


def test_a_charge_that_succeeds_after_its_order_expired_is_refunded_once_and_the_buyer_told(saga, provider):
    wired, sale = saga.wired(), saga.reset(stock=10, per_user_limit=1)
    provider(delayMs=int(DEADLINE_S * 1000) + 3000)  # every charge answers 3 s after its order's deadline

    race = run_buyers("gateway", wired.gateway_url, buyers=30, product_id=sale.productId, progress=False)
    accepted = [b.order_id for b in race.accepted]
    assert settle(wired, accepted, timeout=60) is not None, "orders left waiting past the deadline"
    assert payments_done(wired, timeout=90), "charges or refunds still under way"
    state = settled(wired, sale.saleId, accepted)
    late = {order for order, status, reason, _ in rows(wired, sale.saleId) if reason == "PAYMENT_TIMEOUT"}
    charges = {order: [c["status"] for c in psp.charges(wired.psp_url, order)] for order in accepted}

    assert len(late) == 10 and state.confirmed == 0, rows(wired, sale.saleId)  # each reserved unit timed out
    assert {order: charges[order] for order in late} == {order: ["refunded"] for order in late}  # charged, refunded
    assert (state.refunded, state.refundedTwice, state.availableStock) == (10, 0, 10), state.as_dict()
    assert {order for order, _, _, refunded in rows(wired, sale.saleId) if refunded} == late
    assert state.ok, state.as_dict()
    updates = told(wired, late)
    assert {u["orderId"] for u in updates if u.get("refunded")} == late
    assert all((u["status"], u["reason"]) == ("CANCELLED", "PAYMENT_TIMEOUT") for u in updates if u.get("refunded"))


def test_every_event_of_a_sale_with_expiries_and_refunds_delivered_again_changes_nothing(saga, provider):
    wired, sale = saga.wired(), saga.reset(stock=5, per_user_limit=1)
    provider(delayMs=int(DEADLINE_S * 1000) + 2000)  # late: each charge expires its order, then is refunded
    race = run_buyers("gateway", wired.gateway_url, buyers=10, product_id=sale.productId, progress=False)
    accepted = [b.order_id for b in race.accepted]
    assert settle(wired, accepted, timeout=60) is not None and payments_done(wired, timeout=90)
    assert settled(wired, sale.saleId, accepted).refunded == 5
    provider(delayMs=wired.payment_delay_ms)
    assert replay.caught_up(wired), "the consumers never caught up after the sale"
    before = snapshot(wired, sale.saleId)

    events = [m for topic in (ev.ORDER_EVENTS, ev.INVENTORY_EVENTS, ev.PAYMENT_EVENTS)
              for m in replay.read_topic(wired, topic) if replay.sale_of(m) == sale.saleId]
    types = {json.loads(m.value())["type"] for m in events}
    assert {ev.ORDER_EXPIRED, ev.REFUND_DUE, ev.PAYMENT_REFUNDED} <= types, types
    ends = replay.send_again(wired, events)
    assert replay.caught_up(wired, at_least=ends), "the consumers never caught up after the replay"

    assert snapshot(wired, sale.saleId) == before  # no row moved, no unit, no charge, no refund more
    assert invariants(wired, sale.saleId, accepted).ok


def snapshot(settings: Settings, sale_id: int) -> dict:
    with postgres.connect(settings.database_url) as pg:
        return {table: pg.execute(query, (sale_id,)).fetchall() for table, query in {
            "orders": "SELECT order_id, status, reason, refunded, updated_at FROM orders WHERE sale_id = %s "
                      "ORDER BY order_id",
            "charges": "SELECT c.charge_id, c.status FROM charges c JOIN orders o USING (order_id) "
                       "WHERE o.sale_id = %s ORDER BY c.charge_id",
            "refunds": "SELECT r.refund_id FROM refunds r JOIN orders o USING (order_id) WHERE o.sale_id = %s "
                       "ORDER BY r.refund_id"}.items()} | {"stock": invariants(settings, sale_id).availableStock}

"""Idempotency: a retried request, a redelivered event, an eager buyer; none of them sells a second unit."""
import asyncio
import uuid

import httpx

from flashsale.adapters import postgres, redis as redis_adapter
from flashsale.events import INVENTORY_EVENTS, ORDER_EVENTS, PAYMENT_EVENTS
from flashsale.harness.checks import invariants, settle
from flashsale.harness.load import run_buyers, swarm
from flashsale.lab import replay


def orders_of(settings, sale_id: int, user_id: str | None = None) -> list[tuple]:
    with postgres.connect(settings.database_url) as pg:
        return pg.execute("SELECT order_id, user_id, quantity, status, reason, updated_at FROM orders "
                          "WHERE sale_id = %s AND (%s::text IS NULL OR user_id = %s) ORDER BY order_id",
                          (sale_id, user_id, user_id)).fetchall()


def snapshot(settings, sale) -> dict:
    """Everything a delivery could change: the rows (with their update times), the sale's Redis keys, the charges."""
    redis = redis_adapter.connect(settings.redis_url)
    with postgres.connect(settings.database_url) as pg:
        charges = pg.execute("SELECT c.charge_id, c.order_id, c.status FROM charges c JOIN orders o USING (order_id) "
                             "WHERE o.sale_id = %s ORDER BY c.charge_id", (sale.saleId,)).fetchall()
    return {"orders": orders_of(settings, sale.saleId), "stock": redis.get(sale.keys.stock),
            "decisions": redis.hgetall(sale.keys.decisions), "userUnits": redis.hgetall(sale.keys.user_units),
            "charges": charges}


def test_a_repeated_idempotency_key_names_one_order(stack, wired, fresh_sale):
    url, key = f"{wired.gateway_url}/api/orders", {"Idempotency-Key": str(uuid.uuid4())}
    body = {"userId": "retrying-buyer", "productId": fresh_sale.productId, "quantity": 1}

    one_by_one = [httpx.post(url, json=body, headers=key, timeout=30) for _ in range(5)]  # a client retrying
    at_once = asyncio.run(swarm(url, [body] * 5, [key] * 5))  # a double click in a retry storm

    assert [r.status_code for r in one_by_one] + [b.status for b in at_once] == [202] * 10
    order_ids = {r.json()["orderId"] for r in one_by_one} | {b.order_id for b in at_once}
    assert len(order_ids) == 1, order_ids
    assert settle(wired, list(order_ids), timeout=30) is not None
    assert [row[3] for row in orders_of(wired, fresh_sale.saleId, "retrying-buyer")] == ["CONFIRMED"]
    assert httpx.get(f"{wired.gateway_url}/api/orders/{order_ids.pop()}").json()["status"] == "CONFIRMED"
    state = invariants(wired, fresh_sale.saleId)
    assert (state.confirmed, state.availableStock) == (1, 99)
    assert state.ok, state.as_dict()


def test_a_retry_after_the_sale_sold_out_still_names_its_order(stack, wired):
    sale = stack.reset(stock=1, per_user_limit=1)
    url, key = f"{wired.gateway_url}/api/orders", {"Idempotency-Key": str(uuid.uuid4())}
    body = {"userId": "lucky-buyer", "productId": sale.productId, "quantity": 1}
    first = httpx.post(url, json=body, headers=key, timeout=30)
    assert first.status_code == 202
    assert settle(wired, [first.json()["orderId"]], timeout=30) is not None  # the last unit is theirs: sold out

    retry = httpx.post(url, json=body, headers=key, timeout=30)  # the first answer got lost; the client retries

    assert retry.status_code == 202, retry.text
    assert retry.json()["orderId"] == first.json()["orderId"]
    for late in ({}, {"Idempotency-Key": str(uuid.uuid4())}):  # a new order, with or without a key: sold out at once
        other = httpx.post(url, json={**body, "userId": "late-buyer"}, headers=late, timeout=30)
        assert other.status_code == 409 and other.json()["error"]["code"] == "SOLD_OUT"
    state = invariants(wired, sale.saleId, [first.json()["orderId"]])
    assert (state.confirmed, state.cancelled, state.availableStock) == (1, 0, 0)
    assert state.ok, state.as_dict()


def test_every_event_of_a_sale_delivered_again_changes_nothing(stack, wired):
    sale = stack.reset(stock=10, per_user_limit=1)
    race = run_buyers("gateway", wired.gateway_url, buyers=30, product_id=sale.productId, progress=False)
    accepted = [b.order_id for b in race.accepted]
    assert len(accepted) + race.count(409) == 30, race.statuses()
    assert settle(wired, accepted, timeout=60) is not None
    assert replay.caught_up(wired), "the consumers never caught up after the sale"
    before = snapshot(wired, sale)
    assert sum(row[3] == "CONFIRMED" for row in before["orders"]) == 10

    events = [m for topic in (ORDER_EVENTS, INVENTORY_EVENTS, PAYMENT_EVENTS) for m in replay.read_topic(wired, topic)
              if replay.sale_of(m) == sale.saleId]
    on_topic = {t: sum(m.topic() == t for m in events) for t in (ORDER_EVENTS, INVENTORY_EVENTS, PAYMENT_EVENTS)}
    # created, saved, (reserved,) confirmed or cancelled per order; one decision per order; one payment per sale
    assert on_topic[ORDER_EVENTS] >= 3 * len(accepted) and on_topic[INVENTORY_EVENTS] >= len(accepted), on_topic
    assert on_topic[PAYMENT_EVENTS] >= 10, on_topic
    ends = replay.send_again(wired, events)
    assert replay.caught_up(wired, at_least=ends), "the consumers never caught up after the replay"

    assert snapshot(wired, sale) == before  # no row, no unit and no charge more: every payment again charged nothing
    state = invariants(wired, sale.saleId, accepted)
    assert (state.confirmed, state.availableStock, state.paid) == (10, 0, 10)
    assert state.ok, state.as_dict()


def test_one_user_ordering_twenty_times_at_once_gets_one_unit(stack, wired, fresh_sale):
    url = f"{wired.gateway_url}/api/orders"
    body = {"userId": "eager-buyer", "productId": fresh_sale.productId, "quantity": 1}
    keys = [{"Idempotency-Key": str(uuid.uuid4())} for _ in range(10)] + [{}] * 10  # ten with a key, ten without

    buyers = asyncio.run(swarm(url, [body] * 20, keys))

    assert [b.status for b in buyers] == [202] * 20, [b.body for b in buyers]
    order_ids = [b.order_id for b in buyers]
    assert len(set(order_ids)) == 20
    assert settle(wired, order_ids, timeout=60) is not None
    outcomes = sorted((status, reason) for _, _, _, status, reason, _ in orders_of(wired, fresh_sale.saleId))
    assert outcomes == [("CANCELLED", "PER_USER_LIMIT")] * 19 + [("CONFIRMED", None)]
    state = invariants(wired, fresh_sale.saleId, order_ids)
    assert (state.confirmed, state.availableStock) == (1, 99)
    assert state.ok, state.as_dict()

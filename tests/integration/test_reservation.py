"""The inventory rule against the real Redis: atomic, idempotent, never below zero, fair."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from flashsale.adapters import redis as redis_adapter
from flashsale.rules.reservation import PER_USER_LIMIT, RESERVED, SOLD_OUT, SaleKeys, reserve, reserve_all


@pytest.fixture
def redis(wired):
    return redis_adapter.connect(wired.redis_url)


@pytest.fixture
def keys(redis):
    keys = SaleKeys(sale_id=900_000 + redis.incr("test:reservation-sales"))
    redis.set(keys.stock, 3)
    return keys


def test_reserves_until_sold_out_and_never_below_zero(redis, keys):
    decisions = [reserve(redis, keys, f"o{i}", f"u{i}", 1, 1).decision for i in range(5)]
    assert decisions == [RESERVED] * 3 + [SOLD_OUT] * 2
    assert int(redis.get(keys.stock)) == 0


def test_same_order_twice_is_one_reservation(redis, keys):
    first = reserve(redis, keys, "o1", "u1", 1, 1)
    again = reserve(redis, keys, "o1", "u1", 1, 1)
    assert first.decision == again.decision == RESERVED
    assert int(redis.get(keys.stock)) == 2


def test_a_quantity_larger_than_the_stock_takes_nothing(redis, keys):
    assert reserve(redis, keys, "big", "u1", 5, 10).decision == SOLD_OUT
    assert int(redis.get(keys.stock)) == 3


def test_per_user_limit(redis, keys):
    assert reserve(redis, keys, "a", "greedy", 1, 1).decision == RESERVED
    assert reserve(redis, keys, "b", "greedy", 1, 1).decision == PER_USER_LIMIT
    assert int(redis.get(keys.stock)) == 2


def test_many_threads_many_redeliveries_exactly_the_stock(redis, keys):
    redis.set(keys.stock, 50)
    orders = [(f"o{i}", f"u{i}", 1) for i in range(400)]

    def deliver(batch):  # each batch delivered twice, as at-least-once delivery may do
        return reserve_all(redis, keys, batch, 1) + reserve_all(redis, keys, batch, 1)

    with ThreadPoolExecutor(8) as pool:
        results = [r for rs in pool.map(deliver, [orders[i::8] for i in range(8)]) for r in rs]
    reserved = {r.order_id for r in results if r.reserved}
    assert len(reserved) == 50
    assert int(redis.get(keys.stock)) == 0
    assert redis.hlen(keys.decisions) == 400

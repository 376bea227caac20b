"""Exercise 12: the per-user limit, enforced atomically, in the stack's real Redis.

The learner writes `reserve(redis, keys, order_id, user_id, quantity, limit) -> str`
(RESERVED, SOLD_OUT or PER_USER_LIMIT); `keys` names the sale's stock counter,
its decisions hash and its hash of units per user, as `rules.reservation.SaleKeys` does.
"""
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import redis as redis_py

from flashsale.lab.exercises import expect, passed, run_id, short
from flashsale.stack.control import Stack

DECISIONS = {"RESERVED", "SOLD_OUT", "PER_USER_LIMIT"}


@dataclass(frozen=True)
class Keys:
    """One sale's keys, like `rules.reservation.SaleKeys`, in a namespace of the check's own."""

    sale: str

    @property
    def stock(self) -> str:
        return f"{self.sale}:stock"

    @property
    def decisions(self) -> str:
        return f"{self.sale}:decisions"

    @property
    def user_units(self) -> str:
        return f"{self.sale}:user_units"


class Sale:
    def __init__(self, redis, reserve, stock: int, limit: int):
        self.redis, self.reserve, self.limit = redis, reserve, limit
        self.keys = Keys(f"exercise12:{run_id()}")
        redis.set(self.keys.stock, stock)

    def __call__(self, order_id: str, user_id: str, quantity: int = 1) -> str:
        decision = self.reserve(self.redis, self.keys, order_id, user_id, quantity, self.limit)
        decision = decision.decode() if isinstance(decision, bytes) else decision
        expect(decision in DECISIONS, f"reserve must return 'RESERVED', 'SOLD_OUT' or 'PER_USER_LIMIT'; "
                                      f"it returned {decision!r}")
        return decision

    @property
    def stock(self) -> int:
        return int(self.redis.get(self.keys.stock) or 0)

    def race(self, orders: list[tuple[str, str, int]]) -> dict[str, str]:
        """(orderId, userId, quantity) from 32 threads at once; a user's orders sit side by side, so they overlap."""
        with ThreadPoolExecutor(32) as pool:
            return dict(zip((o[0] for o in orders), pool.map(lambda o: self(*o), orders), strict=True))


def check(stack: Stack, reserve, buyers: int = 250, tries: int = 4, stock: int = 100) -> None:
    redis = redis_py.Redis.from_url(stack.wired().redis_url, max_connections=64)

    sale = Sale(redis, reserve, stock=10, limit=2)
    expect(sale("a-1", "alice", 2) == "RESERVED", "alice's first order, 2 units with a limit of 2, must be RESERVED")
    expect(sale("a-2", "alice", 1) == "PER_USER_LIMIT",
           "alice already has 2 units and the limit is 2: another unit must be PER_USER_LIMIT")
    expect(sale("b-1", "bob", 3) == "PER_USER_LIMIT", "bob asks for 3 with a limit of 2: PER_USER_LIMIT")
    expect(sale.stock == 8, f"after 2 units reserved, 8 of 10 must be left; {sale.stock} are: an order refused for "
                            "the limit must take nothing")
    expect(sale("b-2", "bob", 2) == "RESERVED", "bob, refused for asking 3, may still buy 2: a refused order must "
                                                "not count against its buyer")
    passed("the limit counts units per user; a refused order takes nothing")

    sale = Sale(redis, reserve, stock=1, limit=1)
    sale("c-1", "carol")
    expect(sale("d-1", "dave") == "SOLD_OUT", "with no stock left, dave's order must be SOLD_OUT")
    expect(sale.stock == 0, f"stock went below zero ({sale.stock}): check before you decrement")
    passed("sold out is sold out")

    sale = Sale(redis, reserve, stock=stock, limit=1)
    orders = [(f"order-{u:04d}-{t}", f"user-{u:04d}", 1) for u in range(buyers) for t in range(tries)]
    first = sale.race(orders)
    units: dict[str, int] = {}
    for order_id, user, _ in orders:
        units[user] = units.get(user, 0) + (first[order_id] == "RESERVED")
    greedy = [user for user, n in units.items() if n > 1]
    expect(not greedy, f"{len(greedy)} users got more than 1 unit with a limit of 1 ({short(greedy)}): their orders "
           "ran at the same time, each read the user's count before any added to it. Read, check and add in one "
           "step (a Lua script runs atomically)")
    reserved = sum(units.values())
    expect(reserved == stock and sale.stock == 0, f"{buyers} users x {tries} orders for {stock} phones: "
           f"{reserved} reserved, {sale.stock} left; exactly {stock} must be reserved and 0 left")
    passed(f"{buyers} users sent {tries} orders each, all at once: {stock} reserved, nobody over the limit")

    again = sale.race(orders[::-1])
    changed = [o for o in first if again[o] != first[o]]
    expect(not changed, f"a redelivered order changed its answer ({short(changed)}): remember each orderId's "
           "decision and give it back")
    expect(sale.stock == 0, f"redelivery moved the stock to {sale.stock}")
    passed(f"all {len(orders):,} orders delivered again: the same answers")
    print("All checks passed: compare with flashsale/rules/reserve.lua, which the inventory service runs.")

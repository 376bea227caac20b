"""A sale of the check's own in the real Redis, and the learner's reserve called on it."""
from dataclasses import dataclass

from flashsale.lab.exercises import expect, run_id
from flashsale.lab.exercises.limit.rules import DECISIONS


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
        return decided(self.reserve(self.redis, self.keys, order_id, user_id, quantity, self.limit))

    @property
    def stock(self) -> int:
        return int(self.redis.get(self.keys.stock) or 0)

    def units(self, user: str) -> int:
        return int(self.redis.hget(self.keys.user_units, user) or 0)

    def state(self) -> tuple[int, dict]:
        return self.stock, self.redis.hgetall(self.keys.user_units)


def decided(decision) -> str:
    decision = decision.decode() if isinstance(decision, bytes) else decision
    expect(decision in DECISIONS, f"reserve must return 'RESERVED', 'SOLD_OUT' or 'PER_USER_LIMIT'; it returned "
                                  f"{decision!r}")
    return decision

"""The inventory rule: reserve stock for an order, once, never below zero; give it back if the payment fails.

The whole decision is one Lua script, so Redis runs it atomically: no other
reservation can slip between reading the stock and taking from it. The script
remembers each orderId's decision, so a redelivered event gets the same answer
and takes nothing twice (the seed's DECR-then-INCR did both wrong). The release
(the saga's compensation) is a script too, and only a RESERVED order releases.

What a script is not: Redis runs one script at a time and nothing else meanwhile,
so a slow script stalls every client (these take microseconds); and a script has
no rollback, so a script that fails halfway keeps the writes it made before (these
check everything before they write). In Redis Cluster every key of one script must
live in one slot: the sale's keys share the hash tag `{sale:N}`, so they always do.
"""
from dataclasses import dataclass
from importlib.resources import files

from redis import Redis

RESERVE_LUA = files(__package__).joinpath("reserve.lua").read_text()
RELEASE_LUA = files(__package__).joinpath("release.lua").read_text()

RESERVED = "RESERVED"
RELEASED = "RELEASED"  # reserved, then given back: the payment failed
SOLD_OUT = "SOLD_OUT"
PER_USER_LIMIT = "PER_USER_LIMIT"


@dataclass(frozen=True)
class SaleKeys:
    """Redis keys of one sale; a new sale gets fresh keys, so late events of an old one cannot touch it.

    `{sale:N}` is their hash tag: Redis Cluster hashes only that part, so one sale's keys share a slot.
    """

    sale_id: int

    @property
    def tag(self) -> str:
        return f"{{sale:{self.sale_id}}}"

    @property
    def stock(self) -> str:
        return f"{self.tag}:stock"

    @property
    def decisions(self) -> str:
        return f"{self.tag}:decisions"

    @property
    def user_units(self) -> str:
        return f"{self.tag}:user_units"


@dataclass(frozen=True)
class Reservation:
    order_id: str
    decision: str  # RESERVED, SOLD_OUT or PER_USER_LIMIT; RELEASED once its payment failed
    available_stock: int

    @property
    def reserved(self) -> bool:
        return self.decision == RESERVED


def reserve_all(redis: Redis, keys: SaleKeys, orders: list[tuple[str, str, int]],
                per_user_limit: int) -> list[Reservation]:
    """Reserve for many (orderId, userId, quantity) at once: one round trip, each script still atomic.

    Safe to call any number of times with the same orders.
    """
    script = redis.register_script(RESERVE_LUA)
    pipe = redis.pipeline(transaction=False)
    for order_id, user_id, quantity in orders:
        script(keys=[keys.stock, keys.decisions, keys.user_units],
               args=[order_id, user_id, quantity, per_user_limit], client=pipe)
    return [_reservation(order[0], reply) for order, reply in zip(orders, pipe.execute(), strict=True)]


def reserve(redis: Redis, keys: SaleKeys, order_id: str, user_id: str, quantity: int,
            per_user_limit: int) -> Reservation:
    return reserve_all(redis, keys, [(order_id, user_id, quantity)], per_user_limit)[0]


def release_all(redis: Redis, keys: SaleKeys, orders: list[tuple[str, str, int]]) -> list[Reservation]:
    """Give back the units of many (orderId, userId, quantity) whose payment failed: RELEASED once, then no-ops."""
    script = redis.register_script(RELEASE_LUA)
    pipe = redis.pipeline(transaction=False)
    for order_id, user_id, quantity in orders:
        script(keys=[keys.stock, keys.decisions, keys.user_units], args=[order_id, user_id, quantity], client=pipe)
    return [_reservation(order[0], reply) for order, reply in zip(orders, pipe.execute(), strict=True)]


def _reservation(order_id: str, reply: tuple[bytes | str, int]) -> Reservation:
    decision, stock = reply
    decision = decision.decode() if isinstance(decision, bytes) else decision
    return Reservation(order_id, decision, int(stock))

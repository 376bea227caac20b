"""Exercise 12: the per-user limit, enforced atomically, in the stack's real Redis.

The learner writes `reserve(redis, keys, order_id, user_id, quantity, limit) -> str`
(RESERVED, SOLD_OUT or PER_USER_LIMIT); `keys` names the sale's stock counter,
its decisions hash and its hash of units per user, as `rules.reservation.SaleKeys` does.

First the check calls it one order at a time, in this kernel. Then it runs it as the
inventory does: in four processes of its own, each buyer's orders in all four at the same
moment. That moment is built, not hoped for: the four processes' Redis clients go in
lockstep, no process sending its next command before every other has sent as many (or is
done), so a read-then-write of any kind is overtaken every time, and a lock of one process
protects nothing in the others. Then every order again, each in another process.
"""
from typing import TYPE_CHECKING

import redis as redis_py

from flashsale.lab.exercises import Wrong, expect, step
from flashsale.lab.exercises.limit.at_once import at_once
from flashsale.lab.exercises.limit.rules import LIMIT, PROCESSES, REFUSED, RULES, SAME, STEPS, STOCK
from flashsale.lab.exercises.limit.sale import Keys, Sale

if TYPE_CHECKING:
    from flashsale.stack.control import Stack

__all__ = ["RULES", "STEPS", "Keys", "check", "check_then_act"]


def check_then_act(redis, keys, order_id: str, user_id: str, quantity: int, limit: int) -> str:
    """The obvious version, and the subject of the notebook's prediction: each line is one Redis command, atomic on
    its own; the function as a whole is not."""
    decided = redis.hget(keys.decisions, order_id)
    if decided:
        return decided.decode()
    if int(redis.hget(keys.user_units, user_id) or 0) + quantity > limit:
        decision = "PER_USER_LIMIT"
    elif int(redis.get(keys.stock) or 0) < quantity:
        decision = "SOLD_OUT"
    else:
        redis.decrby(keys.stock, quantity)
        redis.hincrby(keys.user_units, user_id, quantity)
        decision = "RESERVED"
    redis.hset(keys.decisions, order_id, decision)
    return decision


def check(stack: "Stack", reserve, buyers: int = 250, stock: int = 100, processes: int = PROCESSES) -> None:
    url = stack.wired().redis_url
    redis = redis_py.Redis.from_url(url)

    with step("A", STEPS["A"]):
        two = Sale(redis, reserve, stock=10, limit=2)
        first = {}
        for order_id, user, quantity, decision, left, units in [
                ("a-1", "alice", 2, "RESERVED", 8, 2), ("a-2", "alice", 1, "PER_USER_LIMIT", 8, 2),
                ("b-1", "bob", 3, "PER_USER_LIMIT", 8, 0), ("b-2", "bob", 2, "RESERVED", 6, 2)]:
            first[order_id] = one_at_a_time(two, order_id, user, quantity, decision, left, units,
                                            refused_before=order_id == "b-2")

    with step("B", STEPS["B"]):
        last = Sale(redis, reserve, stock=1, limit=2)
        for order_id, user, quantity, decision, left, units in [
                ("c-1", "carol", 2, "SOLD_OUT", 1, 0), ("d-1", "dave", 1, "RESERVED", 0, 1),
                ("e-1", "erin", 1, "SOLD_OUT", 0, 0)]:
            first[order_id] = one_at_a_time(last, order_id, user, quantity, decision, left, units)

    with step("C", STEPS["C"]):
        redis.set(two.keys.stock, 0)  # sold out since: the reservations come again
        redis.set(last.keys.stock, 5)  # units came back (an order cancelled): the refusals come again
        redis.hset(two.keys.user_units, "bob", 0)  # bob's reservation cancelled: his refused order of 3 comes again
        for sale, order_id, user, quantity in [(two, "a-1", "alice", 2), (two, "a-2", "alice", 1),
                                               (two, "b-1", "bob", 3), (two, "b-2", "bob", 2),
                                               (last, "c-1", "carol", 2), (last, "e-1", "erin", 1)]:
            before = sale.state()
            said = sale(order_id, user, quantity)
            expect(said == first[order_id], f"order {order_id} ({user}, {quantity}), {first[order_id]} at first, "
                   f"delivered again after the stock and bob's units changed, was answered {said}: remember each "
                   "orderId's decision (keys.decisions) and give it back", SAME)
            expect(sale.state() == before, f"order {order_id}, delivered again, got the same answer but changed the "
                   f"stock or the buyers' units ({before} -> {sale.state()}): a decision seen before changes nothing",
                   SAME)

    at_once(redis, url, reserve, buyers, stock, processes)
    print("All checks passed: compare with flashsale/rules/reserve.lua, which the inventory service runs.")


def one_at_a_time(sale: Sale, order_id: str, user: str, quantity: int, decision: str, left: int, units: int,
                  refused_before: bool = False) -> str:
    before = (sale.stock, sale.units(user))
    said = sale(order_id, user, quantity)
    after = (sale.stock, sale.units(user))
    what = (f"{user} ({before[1]} reserved, a limit of {sale.limit}) orders {quantity} when {before[0]} "
            f"{'is' if before[0] == 1 else 'are'} left")
    expect(after[0] >= 0, f"stock went below zero ({after[0]}) when {what}: check that the stock covers the quantity "
           "before you take it", STOCK)
    if said != decision:
        if refused_before and said == "PER_USER_LIMIT":
            raise Wrong(f"{what}: it must be {decision}; yours said {said}. {user} was refused an order of more than "
                        "the limit before: a refused order must not count against its buyer", REFUSED)
        if "PER_USER_LIMIT" in (said, decision):
            raise Wrong(f"{what}: it must be {decision}; yours said {said}. Count units, not orders: the buyer's "
                        "units plus this quantity may reach the limit, not pass it", LIMIT)
        raise Wrong(f"{what}: it must be {decision}; yours said {said}. Compare the stock with the quantity, "
                    "not with 0", STOCK)
    if decision == "RESERVED":
        expect(after[0] == left, f"{what}: RESERVED, and it left {after[0]}; it must leave {left}: take the quantity "
               "from the stock (DECRBY), not one unit", STOCK)
        expect(after[1] == units, f"{what}: RESERVED, and keys.user_units counts {after[1]} for {user}; it must count "
               f"{units}: add the quantity to the buyer's units (HINCRBY), not one order", LIMIT)
    else:
        expect(after == before, f"{what}: {said}, and yet the stock went {before[0]} -> {after[0]} and {user}'s "
               f"units {before[1]} -> {after[1]}: a refused order takes nothing and counts nothing", REFUSED)
    return said

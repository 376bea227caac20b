"""Exercise 10: the idempotent reservation, as one Lua script in the stack's real Redis.

The script gets KEYS[1] (the stock counter), KEYS[2] (a hash orderId -> decision),
ARGV[1] (the orderId), ARGV[2] (the quantity), and returns {decision, stock left}.
"""
import threading
from concurrent.futures import ThreadPoolExecutor

import redis as redis_py

from flashsale.lab.exercises import expect, passed, run_id, short
from flashsale.stack.control import Stack

DECISIONS = {"RESERVED", "SOLD_OUT"}


class Script:
    """The learner's script, registered in Redis, called the way the inventory service calls it."""

    def __init__(self, redis, lua: str, prefix: str):
        expect(isinstance(lua, str) and lua.strip(), "your function must return the Lua script, as a string")
        self.redis, self.prefix, self.script = redis, prefix, redis.register_script(lua)

    def keys(self, sale: str) -> list[str]:
        return [f"{self.prefix}:{sale}:stock", f"{self.prefix}:{sale}:decisions"]

    def start(self, sale: str, stock: int) -> None:
        self.redis.set(self.keys(sale)[0], stock)

    def stock(self, sale: str) -> int:
        return int(self.redis.get(self.keys(sale)[0]) or 0)

    def __call__(self, sale: str, order_id: str, quantity: int = 1) -> tuple[str, int]:
        try:
            reply = self.script(keys=self.keys(sale), args=[order_id, quantity])
        except redis_py.ResponseError as error:
            raise AssertionError(f"Redis could not run your script: {error}") from None
        expect(isinstance(reply, list) and len(reply) == 2,
               "your script must return a table of two, {decision, stock}, like {'RESERVED', 99}; "
               f"it returned {reply!r}")
        decision = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
        expect(decision in DECISIONS, f"the decision must be 'RESERVED' or 'SOLD_OUT'; your script said {decision!r}")
        expect(isinstance(reply[1], int), f"the second value must be the stock left, a number; it was {reply[1]!r} "
                                          "(Lua numbers come back as integers; tonumber() what you read)")
        return decision, reply[1]


def check(stack: Stack, lua: str, buyers: int = 1000, stock: int = 100) -> None:
    redis = redis_py.Redis.from_url(stack.wired().redis_url, max_connections=64)
    script = Script(redis, lua, f"exercise10:{run_id()}")

    script.start("one", 10)
    answer = script("one", "order-1")
    expect(answer == ("RESERVED", 9) and script.stock("one") == 9, "one order for 1 of 10 must answer "
           f"{{'RESERVED', 9}} and leave 9; yours answered {answer!r} and left {script.stock('one')}")
    passed("one order, one reservation")

    script.start("last", 1)
    decision, left = script("last", "greedy", 2)
    expect(script.stock("last") >= 0, f"stock went below zero ({script.stock('last')}) on an order for 2 when 1 was "
           "left: your script must check that the stock covers the quantity before it decrements")
    expect(decision == "SOLD_OUT" and script.stock("last") == 1,
           f"an order for 2 when 1 was left must be SOLD_OUT and take nothing; yours said {decision} and left "
           f"{script.stock('last')}: compare the stock with the quantity, not with 0")
    script.start("none", 0)
    decision, _ = script("none", "late")
    expect(script.stock("none") == 0, f"stock went below zero ({script.stock('none')}) on an order when none was "
           "left: your script must check before it decrements (the seed's DECR-then-INCR does not)")
    expect(decision == "SOLD_OUT", f"with no stock the answer must be SOLD_OUT; yours said {decision}")
    passed("never below zero, even for a quantity larger than what is left")

    script.start("race", stock)
    orders = [f"order-{i:05d}" for i in range(buyers)]
    first, lowest = _race(script, "race", orders)
    reserved = [o for o in orders if first[o][0] == "RESERVED"]
    expect(lowest >= 0, f"stock went below zero ({lowest}) while {buyers:,} buyers raced: check before you decrement")
    expect(len(reserved) == stock, f"{buyers:,} buyers for {stock} phones: your script reserved {len(reserved)}; "
           f"it must reserve exactly {stock}")
    expect(script.stock("race") == 0, f"after the race the stock must be 0; it is {script.stock('race')}")
    lefts = sorted(first[o][1] for o in reserved)
    expect(lefts == list(range(stock)), "each reservation must return the stock left after it (99, 98, ... 0); "
           f"yours returned {short(lefts)}")
    passed(f"{buyers:,} concurrent orders for {stock} phones: exactly {stock} reserved, stock never below zero")

    again, _ = _race(script, "race", list(reversed(orders)))
    changed = [o for o in orders if again[o][0] != first[o][0]]
    expect(not changed, f"a redelivered order changed its answer ({short(changed)}): remember each orderId's "
           "decision (HSET in KEYS[2]) and give it back when the order comes again")
    expect(script.stock("race") == 0, f"redelivery moved the stock to {script.stock('race')}")
    script.start("twice", stock)
    half = orders[: stock // 2]
    for _ in range(2):
        _race(script, "twice", half)
    expect(script.stock("twice") == stock - len(half),
           f"redelivery took stock again: {len(half)} orders delivered twice left {script.stock('twice')} of {stock}, "
           f"not {stock - len(half)}: an orderId seen before must get its first decision back and take nothing")
    passed(f"every order delivered twice: the same {buyers:,} answers, no phone taken twice")

    script.start("back", 1)
    script("back", "greedy", 2)
    script.start("back", 3)  # a cancelled order gave its units back; then the refused order is delivered again
    decision, _ = script("back", "greedy", 2)
    expect(decision == "SOLD_OUT" and script.stock("back") == 3,
           f"an order refused SOLD_OUT and delivered again after units came back (3 left) was answered {decision} "
           f"and left {script.stock('back')}: the order service has already cancelled it, so that phone is gone to "
           "nobody. Record SOLD_OUT too (HSET), and give every recorded decision back")
    passed("a refused order delivered again is refused again, even when stock came back")
    print("All checks passed: this is the rule the inventory service runs (flashsale/rules/reserve.lua).")


def _race(script: Script, sale: str, orders: list[str]) -> tuple[dict, int]:
    """Every order at once from 32 threads, while a watcher reads the stock as often as it can."""
    lowest, done = [script.stock(sale)], threading.Event()

    def watch():
        while not done.is_set():
            lowest[0] = min(lowest[0], script.stock(sale))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with ThreadPoolExecutor(32) as pool:
            answers = dict(zip(orders, pool.map(lambda o: script(sale, o), orders), strict=True))
    finally:
        done.set()
        watcher.join()
    return answers, min(lowest[0], script.stock(sale))

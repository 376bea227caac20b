"""Exercise 10: the idempotent reservation, as one Lua script in the stack's real Redis.

The script gets KEYS[1] (the stock counter), KEYS[2] (a hash orderId -> decision),
ARGV[1] (the orderId), ARGV[2] (the quantity), and returns {decision, stock left}.

Redis runs a script as one command, so no other client sees it half-way: a race cannot
break a script, and the 1,000 orders at once prove the rule as the inventory meets it
rather than catch a race. What breaks scripts is memory: a decision not recorded, or
recorded and not read, shows when an order comes again after the stock changed (a
reservation again when the stock is gone, a refusal again when units came back).
"""
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import redis as redis_py

from flashsale.lab.exercises import Rule, Wrong, expect, run_id, short, step

if TYPE_CHECKING:
    from flashsale.stack.control import Stack

DECISIONS = {"RESERVED", "SOLD_OUT"}
RULES = (
    Rule(1, "An orderId that already has a decision gets that decision back, and nothing changes."),
    Rule(2, "Otherwise it is `RESERVED` if the stock covers the quantity, and the stock goes down by the quantity; "
            "if not, `SOLD_OUT`, and the stock stays as it is. The stock never goes below zero."),
    Rule(3, "Either way, the decision is recorded under the orderId, in `KEYS[2]`."),
    Rule(4, "It returns `{decision, stock}`: the decision, and the units left after it (for an order decided "
            "before, the units left now)."),
)
SAME, COVERS, RECORDED, RETURNS = RULES
STEPS = {
    "A": "one order for 1 phone of 10, then one for 3",
    "B": "orders the stock does not cover, and one it just covers",
    "C": "each of those orders again, one at a time, after the stock changed",
    "D": "1,000 orders for 100 phones at once",
    "E": "all 1,000 again, at once",
    "F": "the record: every decision in KEYS[2]",
}


def seed_script() -> str:
    """The obvious first script, and the subject of the notebook's prediction: the seed's rule (DECR; below zero,
    INCR back and refuse), moved into one Lua script."""
    return """
local left = redis.call('DECRBY', KEYS[1], ARGV[2])
if left < 0 then
  redis.call('INCRBY', KEYS[1], ARGV[2])
  return {'SOLD_OUT', left + tonumber(ARGV[2])}
end
return {'RESERVED', left}
"""


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

    def recorded(self, sale: str) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.redis.hgetall(self.keys(sale)[1]).items()}

    def __call__(self, sale: str, order_id: str, quantity: int = 1) -> tuple[str, int]:
        try:
            reply = self.script(keys=self.keys(sale), args=[order_id, quantity])
        except redis_py.ResponseError as error:
            raise Wrong(f"Redis could not run your script: {error}") from None
        expect(isinstance(reply, list) and len(reply) == 2,
               "your script must return a table of two, {decision, stock}, like {'RESERVED', 99}; "
               f"it returned {reply!r}", RETURNS)
        decision = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
        expect(decision in DECISIONS, f"the decision must be 'RESERVED' or 'SOLD_OUT'; your script said {decision!r}",
               RETURNS)
        expect(isinstance(reply[1], int), f"the second value must be the stock left, a number; it was {reply[1]!r} "
                                          "(Lua numbers come back as integers; tonumber() what you read)", RETURNS)
        return decision, reply[1]


def check(stack: "Stack", lua: str, buyers: int = 1000, stock: int = 100) -> None:
    redis = redis_py.Redis.from_url(stack.wired().redis_url, max_connections=64)
    script = Script(redis, lua, f"exercise10:{run_id()}")

    with step("A", STEPS["A"]):
        script.start("one", 10)
        one_at_a_time(script, "one", "order-1", 1, "RESERVED", 9)
        one_at_a_time(script, "one", "order-3", 3, "RESERVED", 6)

    with step("B", STEPS["B"]):
        script.start("short", 1)
        one_at_a_time(script, "short", "greedy", 2, "SOLD_OUT", 1)
        script.start("exact", 2)
        one_at_a_time(script, "exact", "just-enough", 2, "RESERVED", 0)
        script.start("none", 0)
        one_at_a_time(script, "none", "late", 1, "SOLD_OUT", 0)

    with step("C", STEPS["C"]):
        first = {("one", "order-1"): "RESERVED", ("one", "order-3"): "RESERVED", ("short", "greedy"): "SOLD_OUT",
                 ("exact", "just-enough"): "RESERVED"}
        records = {sale: script.recorded(sale) for sale in ("one", "short", "exact")}
        script.start("one", 0)  # the phones are gone: a reservation comes again
        script.start("short", 5)  # a cancelled order gave units back: the refused order comes again
        for (sale, order_id), decision in first.items():
            again(script, sale, order_id, {"order-3": 3, "greedy": 2, "just-enough": 2}.get(order_id, 1),
                  decision, records[sale])

    with step("D", STEPS["D"]):
        script.start("race", stock)
        orders = [f"order-{i:05d}" for i in range(buyers)]
        answers, lowest = _race(script, "race", orders)
        reserved = [o for o in orders if answers[o][0] == "RESERVED"]
        expect(lowest >= 0, f"stock went below zero ({lowest}) while {buyers:,} buyers raced: check before you take",
               COVERS)
        expect(len(reserved) == stock, f"{buyers:,} buyers for {stock} phones: your script reserved {len(reserved)}; "
               f"it must reserve exactly {stock}", COVERS)
        expect(script.stock("race") == 0, f"after the race the stock must be 0; it is {script.stock('race')}", COVERS)
        lefts = sorted(answers[o][1] for o in reserved)
        expect(lefts == list(range(stock)), "each reservation must return the stock left after it (99, 98, ... 0); "
               f"yours returned {short(lefts)}", RETURNS)

    with step("E", STEPS["E"]):
        records["race"] = script.recorded("race")
        redelivered, _ = _race(script, "race", list(reversed(orders)))
        changed = [o for o in orders if redelivered[o][0] != answers[o][0]]
        if changed:
            _forgot(changed[0], answers[changed[0]][0], redelivered[changed[0]][0], records["race"],
                    f"{len(changed)} of {buyers:,} orders delivered again changed their answer ({short(changed)})")
        expect(script.stock("race") == 0, f"every order delivered again moved the stock to {script.stock('race')}",
               SAME)

    with step("F", STEPS["F"]):
        recorded = script.recorded("race")
        unrecorded = [o for o in orders if recorded.get(o) != answers[o][0]]
        expect(not unrecorded, f"{len(unrecorded)} of {buyers:,} decisions are not in KEYS[2] as they were answered "
               f"({short(f'{o}: {recorded.get(o)}' for o in unrecorded)}): record each one with "
               "HSET KEYS[2] orderId decision. The inventory's other scripts (a release after a failed payment) and "
               "its operators read them there, not wherever else a script keeps them", RECORDED)
    print("All checks passed: this is the rule the inventory service runs (flashsale/rules/reserve.lua).")


def one_at_a_time(script: Script, sale: str, order_id: str, quantity: int, decision: str, left: int) -> None:
    """A new order: its decision and the stock after it, and what the script said the stock is."""
    before = script.stock(sale)
    said, reply = script(sale, order_id, quantity)
    now = script.stock(sale)
    what = f"an order for {quantity} when {before} {'was' if before == 1 else 'were'} left"
    expect(now >= 0, f"stock went below zero ({now}) on {what}: check that the stock covers the quantity before you "
           "take it", COVERS)
    expect(said == decision, f"{what} must be {decision}; your script said {said}"
           + (": compare the stock with the quantity, not with 0" if quantity > 1 else ""), COVERS)
    expect(now == left, f"{what} was {said} and left {now}; it must leave {left}"
           + (": take the quantity (DECRBY), not one unit" if said == "RESERVED" else ": a refusal takes nothing"),
           COVERS)
    expect(reply == now, f"{what}: your script returned {{{said!r}, {reply}}}, but {now} are left: return the stock "
           "after your decision (what DECRBY returns)", RETURNS)


def again(script: Script, sale: str, order_id: str, quantity: int, decision: str, recorded: dict) -> None:
    """An order delivered again: the same decision, nothing changed, and the units left now."""
    before, records = script.stock(sale), script.recorded(sale)
    said, reply = script(sale, order_id, quantity)
    now = script.stock(sale)
    situation = "now that the stock is gone" if before == 0 else f"now that {before} are left"
    if said != decision:
        _forgot(order_id, decision, said, recorded, f"{order_id}, {decision} at first, delivered again {situation}")
    expect(now == before and script.recorded(sale) == records, f"{order_id}, {decision} at first, delivered again "
           f"{situation}, got the same answer but changed the stock ({before} -> {now}) or the record: a decision "
           "seen before changes nothing", SAME)
    expect(reply == now, f"{order_id} delivered again: your script returned {{{said!r}, {reply}}}, but {now} are "
           "left: return the stock as it is now", RETURNS)


def _forgot(order_id: str, first: str, later: str, recorded: dict, what: str) -> None:
    """A changed answer: the decision was never recorded in KEYS[2] (rule 3), or recorded and not given back (1)."""
    if recorded.get(order_id) != first:
        raise Wrong(f"{what}: it was {first}, then {later}. Your script recorded nothing for it in KEYS[2] "
                    f"({recorded.get(order_id)!r}), so it decided again: record every decision, SOLD_OUT too "
                    "(HSET KEYS[2] orderId decision); a refused order may come back after a cancelled order gave "
                    "its units back, and it must be refused again", RECORDED)
    raise Wrong(f"{what}: it was {first}, then {later}, though KEYS[2] holds {first} for it: look the orderId up "
                "first (HGET KEYS[2] orderId), and if it has a decision, return that decision and change nothing",
                SAME)


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

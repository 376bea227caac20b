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
import queue
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis as redis_py
from redis.client import Pipeline

from flashsale.lab.exercises import Rule, Wrong, expect, run_id, short, step
from flashsale.lab.exercises.processes import SPAWN, ChildFailed, failure, pack, start, unpack

if TYPE_CHECKING:
    from flashsale.stack.control import Stack

DECISIONS = {"RESERVED", "SOLD_OUT", "PER_USER_LIMIT"}
RULES = (
    Rule(1, "An orderId seen before gets its first decision back, and nothing changes."),
    Rule(2, "A buyer's reserved units are counted in `keys.user_units`; an order that would take its buyer past "
            "`limit` is `PER_USER_LIMIT`."),
    Rule(3, "The stock must cover the quantity: else `SOLD_OUT`. Otherwise `RESERVED`, and the stock goes down by the "
            "quantity. The stock never goes below zero."),
    Rule(4, "An order that is refused takes nothing and counts nothing against its buyer."),
    Rule(5, "Each order is decided in one atomic step, in Redis: the inventory runs in several processes, each with "
            "many orders in flight, and one buyer's orders arrive at the same moment. Use the `redis` and `keys` you "
            "are given, and keep nothing in your process."),
)
SAME, LIMIT, STOCK, REFUSED, ATOMIC = RULES
STEPS = {
    "A": "Alice and Bob, a limit of 2, one order at a time",
    "B": "the last phone, one order at a time",
    "C": "each of those orders again, one at a time, after the stock and a buyer's units changed",
    "D": "250 buyers send 4 orders each, in 4 processes, each buyer's orders at the same moment",
    "E": "all 1,000 again, each in another process than the first time",
}
PROCESSES = 4
STALL_S = 5  # lockstep waits this long at most for a process that sends nothing (it waits on something else)


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


def at_once(redis, url: str, reserve, buyers: int, stock: int, processes: int) -> None:
    """Steps D and E, in the inventory's processes (closed however the steps end)."""
    inventories: list[Inventory] = []
    try:
        _at_once(redis, url, reserve, buyers, stock, processes, inventories)
    finally:
        for inventory in inventories:
            inventory.close()


def _at_once(redis, url: str, reserve, buyers: int, stock: int, n: int, inventories: list) -> None:
    with step("D", STEPS["D"]):
        race = Sale(redis, reserve, stock=stock, limit=1)
        users = [f"user-{u:04d}" for u in range(buyers)]
        # Process p sends each buyer's order p; for the first tenth of the buyers, the last process sends order 0
        # again (two instances handling one order at the same moment, as during a rebalance).
        twice = buyers // 10
        rounds = [[[(f"order-{u:04d}-{0 if (p == n - 1 and u < twice) else p}", users[u], 1)]
                   for u in range(buyers)] for p in range(n)]
        inventory = Inventory(url, reserve, race.keys, race.limit, n)
        inventories.append(inventory)
        answers = inventory.run(rounds, lockstep=True)
        both = [o for o, said in answers.items() if len(set(said)) > 1]
        expect(not both, f"the same order, handled in two processes at the same moment, got two answers "
               f"({short(f'{o}: {answers[o]}' for o in both)}): decide, and record the decision, in the same atomic "
               "step as the check that it is new", ATOMIC)
        reserved = {o for o, said in answers.items() if said[0] == "RESERVED"}
        units: dict[str, int] = {}
        for order_id in reserved:
            user = "user-" + order_id.split("-")[1]
            units[user] = units.get(user, 0) + 1
        greedy = sorted(u for u, n in units.items() if n > 1)
        expect(not greedy, f"{len(greedy)} buyers got more than 1 unit with a limit of 1 ({short(greedy)}): their "
               "orders ran at the same moment in different processes, and each read the buyer's count before any "
               "added to it. Read, check and add in one step (a Lua script runs atomically); a lock of your process "
               "does not stop the others", ATOMIC)
        counted = {k.decode(): int(v) for k, v in redis.hgetall(race.keys.user_units).items() if int(v)}
        expect(len(reserved) == stock and race.stock == 0 and counted == units,
               f"{buyers} buyers x {n} orders for {stock} phones, at once: {len(reserved)} reserved, "
               f"{race.stock} left, and keys.user_units counts {sum(counted.values())} units; it must be {stock} "
               "reserved, 0 left, and each buyer's units as reserved: do it all in one atomic step", ATOMIC)

    with step("E", STEPS["E"]):
        moved = [[order for orders in rounds[(p + 1) % n] for order in orders] for p in range(n)]
        again = inventory.run([[m] for m in moved], lockstep=False)
        changed = [o for o in answers if set(again[o]) != {answers[o][0]}]
        expect(not changed, f"{len(changed)} orders delivered again, each to another process than the first time, "
               f"changed their answer ({short(f'{o}: {answers[o][0]} then {again[o]}' for o in changed)}): keep each "
               "decision in Redis (keys.decisions), where every process finds it, not in your process", SAME)
        expect(race.stock == 0, f"every order delivered again moved the stock to {race.stock}", SAME)


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


class Inventory:
    """The learner's reserve in PROCESSES processes of its own, as the inventory's instances run it."""

    def __init__(self, redis_url: str, reserve, keys: Keys, limit: int, n: int = PROCESSES):
        packed = pack(reserve, "reserve", ATOMIC)
        self.n, self.shared, self.results = n, Shared(n), SPAWN.Queue()
        self.jobs = [SPAWN.Queue() for _ in range(n)]
        self.processes = [start(_inventory, packed, redis_url, keys, limit, p, self.shared, self.jobs[p],
                                self.results, name=f"exercise12-inventory-{p}") for p in range(n)]

    def close(self) -> None:
        for jobs in self.jobs:
            jobs.put(None)
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()

    def run(self, rounds: list[list[list[tuple[str, str, int]]]], lockstep: bool,
            timeout: float = 300) -> dict[str, list[str]]:
        """rounds[p][r]: process p's orders in round r; with `lockstep`, every process starts round r together and
        sends its commands in step with the others. Returns each order's answers, one per delivery."""
        for p in range(self.n):
            self.jobs[p].put((rounds[p], lockstep))
        reports: list[tuple[str, int, Any]] = []
        deadline = time.monotonic() + timeout
        while len(reports) < self.n:
            try:
                reports.append(self.results.get(timeout=max(1.0, deadline - time.monotonic())))
            except queue.Empty:
                raise Wrong(f"your reserve did not decide {sum(map(len, rounds[0]))} orders in {timeout:g} s in the "
                            f"inventory's processes ({len(reports)} of {self.n} finished): does it wait for "
                            "something that never comes?") from None
        errors = sorted((p, text) for kind, p, text in reports if kind == "error")
        if errors:  # the learner's own error first, not the broken lockstep it left the others in
            p, text = min(errors, key=lambda e: "BrokenBarrierError" in e[1])
            raise ChildFailed(f"your reserve raised in inventory process {p}:\n{text}")
        answers: dict[str, list[str]] = {}
        for _, _, payload in reports:
            for order_id, said in payload:
                answers.setdefault(order_id, []).append(decided(said))
        return answers


class Shared:
    """What the lockstep of the processes shares: each one's count of commands this round, who is done, and when."""

    def __init__(self, n: int):
        self.n = n
        self.counts = SPAWN.Array("i", n, lock=False)
        self.finished = SPAWN.Array("b", n, lock=False)
        self.changed = SPAWN.Condition()
        self.together = SPAWN.Barrier(n)

    def begin(self, me: int) -> None:
        self.together.wait(300)  # every process is done with the last round (or, the first time, has started)
        with self.changed:
            self.counts[me], self.finished[me] = 0, 0
        self.together.wait(300)  # and has reset its count

    def sent(self, me: int) -> None:
        """After each command: wait until every other process has sent as many, or is done with its order."""
        with self.changed:
            self.counts[me] += 1
            self.changed.notify_all()
            self.changed.wait_for(lambda: all(self.finished[q] or self.counts[q] >= self.counts[me]
                                              for q in range(self.n)), timeout=STALL_S)

    def done(self, me: int) -> None:
        with self.changed:
            self.finished[me] = 1
            self.changed.notify_all()


class LockstepPipeline(Pipeline):
    lockstep: tuple[Shared, int] | None = None

    def immediate_execute_command(self, *args, **options):  # WATCH and what runs while watching
        result = super().immediate_execute_command(*args, **options)
        _sent(self.lockstep)
        return result

    def execute(self, raise_on_error: bool = True):
        result = super().execute(raise_on_error)
        _sent(self.lockstep)
        return result


class LockstepRedis(redis_py.Redis):
    """A real client whose every command (a script, a pipeline, a WATCH) waits for the other processes' same one."""

    lockstep: tuple[Shared, int] | None = None

    def execute_command(self, *args, **options):
        result = super().execute_command(*args, **options)
        _sent(self.lockstep)
        return result

    def pipeline(self, transaction=True, shard_hint=None) -> Pipeline:
        pipe = LockstepPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.lockstep = self.lockstep
        return pipe


def _sent(lockstep: tuple[Shared, int] | None) -> None:
    if lockstep is not None:
        lockstep[0].sent(lockstep[1])


def _inventory(packed: bytes, redis_url: str, keys: Keys, limit: int, me: int, shared: Shared, jobs,
               results) -> None:
    """One inventory process: for each job, its orders round by round, in lockstep with the others if asked."""
    reserve = unpack(packed)
    redis = LockstepRedis(connection_pool=redis_py.ConnectionPool.from_url(redis_url))
    while (job := jobs.get()) is not None:
        rounds, lockstep = job
        try:
            answers = []
            for orders in rounds:
                if lockstep:
                    shared.begin(me)
                    redis.lockstep = (shared, me)
                for order_id, user, quantity in orders:
                    said = reserve(redis, keys, order_id, user, quantity, limit)
                    answers.append((order_id, said.decode() if isinstance(said, bytes) else said))
                if lockstep:
                    redis.lockstep = None
                    shared.done(me)
            results.put(("answers", me, answers))
        except BaseException:  # noqa: BLE001  (anything of the learner's goes back to the check, as text)
            redis.lockstep = None
            shared.together.abort()
            results.put(("error", me, failure()))

"""Exercise 12, steps D and E: the learner's reserve as the inventory runs it, in processes of its own.

Each buyer's orders go to every process at the same moment, and that moment is built, not hoped for: the processes'
Redis clients go in lockstep, none sending its next command before every other has sent as many (or is done), so
a read-then-write of any kind is overtaken every time, and a lock of one process protects nothing in the others.
Then every order again, each in another process than the first time.
"""
import queue
import time
from typing import Any

import redis as redis_py
from redis.client import Pipeline

from flashsale.lab.exercises import Wrong, expect, short, step
from flashsale.lab.exercises.limit.rules import ATOMIC, PROCESSES, SAME, STEPS
from flashsale.lab.exercises.limit.sale import Keys, Sale, decided
from flashsale.lab.exercises.processes import SPAWN, ChildFailed, failure, pack, start, stop, unpack

STALL_S = 5  # lockstep waits this long at most for a process that sends nothing (it waits on something else)


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


class Inventory:
    """The learner's reserve in PROCESSES processes of its own, as the inventory's instances run it."""

    def __init__(self, redis_url: str, reserve, keys: Keys, limit: int, n: int = PROCESSES):
        packed = pack(reserve, "reserve", ATOMIC)
        self.n, self.shared, self.results = n, Shared(n), SPAWN.Queue()
        self.jobs = [SPAWN.Queue() for _ in range(n)]
        self.processes = [start(_inventory, packed, redis_url, keys, limit, p, self.shared, self.jobs[p],
                                self.results, name=f"exercise12-inventory-{p}") for p in range(n)]

    def close(self) -> None:
        stop(self.jobs, self.processes)

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

"""Exercise 11, step D: the same order in two consumers at once, each a process of its own with a connection of
its own, as during a rebalance. The race is built, not hoped for: the first delivery's transaction stays open
until the second waits for one of its locks (PostgreSQL says so, pg_stat_activity), or is done.
"""
import contextlib
import queue
import time
from typing import Any

from flashsale import events as ev
from flashsale.adapters import postgres
from flashsale.lab.exercises import Wrong, expect
from flashsale.lab.exercises.consumer.by_hand import (
    announces,
    check_type,
    count,
    deliver,
    order_created,
    row,
    shown,
    summary,
)
from flashsale.lab.exercises.consumer.rules import AT_ONCE
from flashsale.lab.exercises.processes import SPAWN, ChildFailed, failure, pack, start, stop, unpack, waits_for_a_lock


def at_once(database_url: str, handle, run: str) -> None:
    """Two consumers, two processes, the same order at the same time: as during a rebalance, when the member that
    lost a partition is still finishing its batch while the new owner starts it again. The race is made to happen
    every time: the first delivery's transaction stays open until the second waits for one of its locks (or is
    done)."""
    packed = pack(handle, "handler", AT_ONCE)
    with postgres.connect(database_url) as conn, Consumers(packed, database_url, run) as consumers:
        order = order_created(f"ex11-{run}-both")
        (first, second), error = consumers.race(order, order)
        expect(error is None, "the same order.created, handled by two consumers at once, failed on the second with "
               f"{error}. A check (SELECT: is it there?) and then an act (INSERT) leave a gap in which the other "
               "consumer commits: let one statement check and act (INSERT ... ON CONFLICT DO NOTHING)", AT_ONCE)
        expect(count(conn, order) == 1 and row(conn, order) == ("PENDING", None), "the same order.created, handled "
               f"by two consumers at once, left {count(conn, order)} rows, {row(conn, order)}", AT_ONCE)
        expect(announces(first) == announces(second) == "PENDING", "the same order.created, handled by two consumers "
               f"at once, was announced as {shown(first)} and {shown(second)}: both must announce order.saved",
               AT_ONCE)

        decide_at_once(conn, consumers, order, order.next(ev.STOCK_RESERVED, availableStock=9),
                       order.next(ev.STOCK_INSUFFICIENT, reason="SOLD_OUT", availableStock=0), ("CONFIRMED", None))
        refused = order_created(f"ex11-{run}-both-refused")
        deliver(conn, handle, refused, "order.created")
        decide_at_once(conn, consumers, refused, refused.next(ev.STOCK_INSUFFICIENT, reason="SOLD_OUT",
                                                              availableStock=0),
                       refused.next(ev.STOCK_RESERVED, availableStock=3), ("CANCELLED", "SOLD_OUT"))


def decide_at_once(conn, consumers: "Consumers", order: ev.Event, wins: ev.Event, loses: ev.Event,
                   state: tuple[str, str | None]) -> None:
    """Two contrary decisions in two consumers at once, `wins` first: `wins` holds, and both announce it."""
    (first, second), error = consumers.race(wins, loses)
    expect(error is None, f"two decisions about one order at once, {wins.type} then {loses.type}: the second failed "
           f"with {error}. Events come late and out of turn, and a handler that fails on one stops its partition",
           AT_ONCE)
    now = row(conn, order)
    expect(now == state, f"two decisions about one order at once: {wins.type} moved the row to {state[0]} and "
           f"announced it, then {loses.type} moved it to {now}. A check (SELECT the status) and then an act (UPDATE) "
           "leave a gap in which the other consumer commits: let the UPDATE check for itself "
           "(... WHERE status = 'PENDING'), or lock the row as you read it (SELECT ... FOR UPDATE)", AT_ONCE)
    expect(announces(first) == announces(second) == state[0], f"two decisions about one order at once: the row is "
           f"{state[0]}, but they were announced as {shown(first)} and {shown(second)}. Read the row after your "
           "update, and announce what it says", AT_ONCE)


class Consumers:
    """Two consumer processes of the check's own, each with the learner's handler and a connection of its own."""

    def __init__(self, packed: bytes, database_url: str, run: str):
        self.database_url = database_url
        self.names = [f"exercise11-{run}-consumer-{i}" for i in (1, 2)]
        self.jobs = [SPAWN.Queue(), SPAWN.Queue()]
        self.answers = [SPAWN.Queue(), SPAWN.Queue()]
        self.processes = [start(_consumer, packed, database_url, name, jobs, answers, name=name)
                          for name, jobs, answers in zip(self.names, self.jobs, self.answers, strict=True)]

    def __enter__(self) -> "Consumers":
        return self

    def __exit__(self, *_) -> None:
        stop(self.jobs, self.processes)

    def _answer(self, i: int, timeout: float = 180) -> tuple:
        try:
            return self.answers[i].get(timeout=timeout)
        except queue.Empty:
            raise Wrong(f"your handler did not answer within {timeout:g} s in consumer {i + 1}: does it wait for "
                        "something that never comes?") from None

    def race(self, first: ev.Event, second: ev.Event) -> tuple[tuple[Any, Any], str | None]:
        """`first` in consumer 1, its transaction held open; `second` in consumer 2 until it waits for a lock of the
        first (or is done); then the first commits. Returns both answers and the second's error, if any."""
        self.jobs[0].put((first.to_json(), True))
        kind, *said = self._answer(0)
        if kind == "error":  # the first delivery of this event in this process: the learner's error, as it is
            raise ChildFailed(f"your handler raised on {first.type} in consumer 1:\n{said[0]}")
        out1 = check_type(_event(said[0]))
        self.jobs[1].put((second.to_json(), False))
        kind, *said = self._answer(1)  # it has the event, and calls the handler now (however long it took to start)
        answer2 = None
        deadline = time.monotonic() + 30
        with postgres.connect(self.database_url) as watcher:
            while answer2 is None and not waits_for_a_lock(watcher, self.names[1]) and time.monotonic() < deadline:
                with contextlib.suppress(queue.Empty):
                    answer2 = self.answers[1].get(timeout=0.01)
        self.jobs[0].put("commit")
        kind, *said = self._answer(0)
        if kind == "error":
            raise ChildFailed(f"consumer 1 could not commit its transaction:\n{said[0]}")
        kind, *said = answer2 or self._answer(1)
        if kind == "error":
            if "NotImplementedError" in said[0]:
                raise ChildFailed(said[0])
            return (out1, None), said[1]
        return (out1, check_type(_event(said[0]))), None


def _consumer(packed: bytes, database_url: str, name: str, jobs, answers) -> None:
    """A consumer process of step D: each job one event in a transaction of its own, held open if asked."""
    handle = unpack(packed)
    with postgres.connect(database_url, application_name=name) as conn:
        while (job := jobs.get()) is not None:
            event, hold = ev.Event.model_validate_json(job[0]), job[1]
            if not hold:
                answers.put(("started",))
            try:
                with conn.transaction():
                    out = handle(conn, event)
                    said = out.to_json() if isinstance(out, ev.Event) else repr(out)
                    if hold:  # the answer now, the commit when the check says so
                        answers.put(("handled", said))
                        if jobs.get() != "commit":
                            return
            except Exception as error:  # noqa: BLE001  (the learner's, judged by the check)
                answers.put(("error", failure(), summary(error)))
                continue
            answers.put(("committed", said) if hold else ("handled", said))  # the second: once it has committed


def _event(said: str):
    try:
        return ev.Event.model_validate_json(said)
    except ValueError:
        return said  # not an event: check_type says so

"""Exercise 14's producers and the relay's process: real producers that also report, crash, or wait for a word.
"""
import queue

import psycopg
from confluent_kafka import Producer

from flashsale.adapters import postgres
from flashsale.lab.exercises import Wrong
from flashsale.lab.exercises.processes import ChildFailed, die, failure, unpack


class WatchedProducer(Producer):
    """A real producer that also notes, for the check's report, each delivery failure it tells the relay about."""

    def __init__(self, config: dict):
        super().__init__(config)
        self.failures: list[str] = []

    def produce(self, *args, on_delivery=None, callback=None, **kwargs):
        told = on_delivery or callback

        def report(error, message):
            if error is not None:
                self.failures.append(error.str())
            if told is not None:
                told(error, message)
        return super().produce(*args, on_delivery=report, **kwargs)  # type: ignore[misc]  # a subclass's hook


class CrashingProducer(Producer):
    """A real producer whose process dies (SIGKILL) at its second flush, before or after the broker has the batch."""

    def __init__(self, config: dict, crash: str, limit: int):
        super().__init__(config)
        self.crash, self.limit, self.flushes, self.unflushed = crash, limit, 0, 0

    def produce(self, *args, **kwargs):
        self.unflushed += 1
        if self.unflushed > 1.5 * self.limit:  # a relay that never waits dies here, its messages still in memory
            die()
        return super().produce(*args, **kwargs)

    def flush(self, *args, **kwargs):
        self.flushes, self.unflushed = self.flushes + 1, 0
        if self.crash == "before_flush" and self.flushes == 2:
            die()
        left = super().flush(*args, **kwargs)
        if self.crash == "after_flush" and self.flushes == 2:
            die()
        return left


class HeldProducer(Producer):
    """A real producer that, at its first flush, says so and waits for the check's word before it flushes."""

    def __init__(self, config: dict, held, go):
        super().__init__(config)
        self.held, self.go = held, go

    def flush(self, *args, **kwargs):
        if not self.held.is_set():
            self.held.set()
            self.go.wait(600)  # the check says go however its steps end; the wait only bounds a check gone wrong
        return super().flush(*args, **kwargs)


def relay_process(packed: bytes, database_url: str, bootstrap: str, limit: int, mode: str, name: str, signals,
           results) -> None:
    """A relay's process. `mode`: "held" (one call, held in its flush), "once" (one call), or a crash point:
    relay until nothing is left, or until the crash."""
    relay_once = unpack(packed)
    try:
        with postgres.connect(database_url, application_name=name or "exercise14-relay") as conn:
            if mode == "held":
                held = HeldProducer(producer_config(bootstrap), *signals)
                results.put(("sent", mode, relay_once(conn, held, limit=limit)))
                return
            if mode == "once":
                producer = Producer(producer_config(bootstrap))
                signals[0].set()  # about to take its rows
                try:
                    results.put(("sent", mode, relay_once(conn, producer, limit=limit)))
                except psycopg.errors.LockNotAvailable:  # FOR UPDATE NOWAIT: a relay may give way to the other
                    results.put(("sent", mode, "nothing (the rows were locked: NOWAIT)"))
                return
            producer = CrashingProducer(producer_config(bootstrap), mode, limit)
            while sent := relay_once(conn, producer, limit=limit):
                if mode == "after_commit":
                    die()  # after its first call returned: its transaction committed
            results.put(("sent", mode, sent))
    except BaseException:  # noqa: BLE001  (the learner's, reported to the check as text)
        results.put(("error", mode, failure()))


def reported(results, n: int, processes) -> str:
    said = []
    for _ in range(n):
        try:
            kind, mode, what = results.get(timeout=60)
        except queue.Empty:
            raise Wrong(f"a relay did not finish within a minute ({[p.exitcode for p in processes]})") from None
        if kind == "error":
            raise ChildFailed(f"your relay raised in the relay's process ({mode}):\n{what}")
        said.append(f"the {'first' if mode == 'held' else 'second' if mode == 'once' else mode} sent {what!r}")
    return ", ".join(said)


def producer_config(bootstrap: str) -> dict:
    # linger.ms: a message waits in memory until flush() sends it, so a crash before the flush loses it.
    return {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 60000,
            "queue.buffering.max.messages": 100000}


def new_producer(settings) -> Producer:
    return Producer(producer_config(settings.kafka_bootstrap_servers))

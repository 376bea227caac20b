"""A server's background tasks, each held by reference and watched, as uvicorn keeps every task it starts.

asyncio holds a task only weakly: one that nobody keeps can vanish mid-flight, and one that dies says
nothing until it is garbage-collected ("Task exception was never retrieved", if anyone reads the log).
The gateway's background tasks (the fan-out, the producer's poller, the shared sale read) are meant to
run as long as the server. So here a task that ends before `close()` has died; what killed it is kept,
and `/healthz` answers 503 naming it. So is a failure no task raises: a Kafka client's fatal error.
"""
import asyncio
import logging
from collections.abc import Callable

from confluent_kafka import KafkaError

log = logging.getLogger(__name__)


class Supervisor:
    def __init__(self) -> None:
        self.tasks: dict[str, asyncio.Task] = {}
        self.failures: dict[str, str] = {}  # name -> what went wrong, for good
        self.closing = False

    def watch(self, name: str, task: asyncio.Task) -> asyncio.Task:
        self.tasks[name] = task
        task.add_done_callback(lambda done: self._ended(name, done))
        return task

    def report(self, name: str, problem: str) -> None:
        log.error("%s: %s", name, problem)
        self.failures[name] = problem

    def kafka_errors(self, name: str) -> Callable[[KafkaError], None]:
        """A librdkafka `error_cb`. A fatal error (UNKNOWN_PRODUCER_ID, fenced, ...) leaves the client useless for
        good: every later message fails. The others (a broker away) are passing, and librdkafka logs them."""
        def on_error(error: KafkaError) -> None:
            if error.fatal():
                self.report(name, f"fatal Kafka error {error.name()}: {error.str()}; restart the process")
        return on_error

    def close(self) -> None:
        """From now on a task that ends is being stopped, not dying."""
        self.closing = True

    @property
    def healthy(self) -> bool:
        return not self.failures

    def problems(self) -> list[str]:
        return [f"{name}: {problem}" for name, problem in self.failures.items()]

    def _ended(self, name: str, task: asyncio.Task) -> None:
        if self.closing:
            return
        if task.cancelled():
            self.report(name, "cancelled")
        elif (error := task.exception()) is not None:  # retrieved: asyncio has nothing left to complain about
            log.error("%s died", name, exc_info=error)
            self.failures[name] = f"died: {type(error).__name__}: {error}"
        else:
            self.report(name, "stopped, though it should run as long as the server")

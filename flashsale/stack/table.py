"""The stack's process table, `<home>/stack.json`: what runs, where, and how it was started.

A later command (or another notebook) reads it to find what an earlier one started. A command that changes the
stack holds the table's lock (`ProcessTable.locked`), so two `up`s at once cannot start everything twice; it
reads the table once, and saves it after each process it starts, so that a crash loses no pid. The table is
written whole to a temporary file and renamed into place: a reader never sees half of it.
"""
import fcntl
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, ValidationError

from flashsale.settings import Settings
from flashsale.stack.processes import StackError


class Process(BaseModel):
    pid: int
    url: str
    signal: int = signal.SIGTERM  # the one that stops it cleanly
    service: str | None = None  # None for a server
    part_of: str | None = None  # one node of a server of several ("kafka-2" of "kafka")
    instance: int = 0


class State(BaseModel):
    ports: dict[str, dict[str, int]] = {}  # a server keeps its ports across restarts, so clients keep its address
    addresses: dict[str, str] = {}
    processes: dict[str, Process] = {}
    scale: dict[str, int] = {}
    public: bool = False  # `up --public` holds for every later command, until `down`
    durable: bool = False
    broker: str | None = None  # the broker this stack's servers were started with
    kafka_nodes: int = 1

    def instances(self, service: str) -> dict[str, Process]:
        return {name: p for name, p in self.processes.items() if p.service == service}

    def of(self, name: str | None = None) -> dict[str, Process]:
        """The processes started, by name (`inventory`, `inventory.1`, `kafka`...); those of one component if named
        (a service's instances, a server's nodes)."""
        return {n: p for n, p in self.processes.items() if name is None or name in (p.service or n, p.part_of)}

    def pid(self, name: str) -> int | None:
        process = self.processes.get(name)
        return process.pid if process else None

    def wired(self, settings: Settings) -> Settings:
        """The settings every service gets: `settings`, with the running servers' addresses filled in."""
        if settings.infra == "external" or not self.addresses:
            return settings
        return settings.model_copy(update={"kafka_bootstrap_servers": self.addresses["kafka"],
                                           "database_url": self.addresses["postgres"],
                                           "redis_url": self.addresses["redis"]})


class ProcessTable:
    def __init__(self, home: Path, noted: Callable[[State], None] = lambda state: None):
        """`noted`: called with every state saved (the lab keeps a ledger of every pid it ever started)."""
        self.home, self.path, self.noted = home, home / "stack.json", noted

    def read(self) -> State:
        if not self.path.exists():
            return State()
        try:
            return State.model_validate_json(self.path.read_text())
        except ValidationError as error:
            raise StackError(f"{self.path} is not a process table this flashsale can read ({error.error_count()} "
                             "errors); stop what it lists by hand, then delete it.") from None

    def save(self, state: State) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(state.model_dump_json(indent=2))
        os.replace(temporary, self.path)
        self.noted(state)

    @contextmanager
    def locked(self) -> Iterator[State]:
        """One command at a time changes the stack: the table, read once under the lock, for it to change and save."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield self.read()

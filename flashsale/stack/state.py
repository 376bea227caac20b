"""The stack's process table, `<home>/stack.json`: what runs, where, and how it was started.

A later command (or another notebook) reads it to find what an earlier one started. It is written whole to a
temporary file and renamed into place, so a reader never sees half of it, even if the writer dies midway.
"""
import os
import signal
from pathlib import Path

from pydantic import BaseModel, ValidationError

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


def load(path: Path) -> State:
    if not path.exists():
        return State()
    try:
        return State.model_validate_json(path.read_text())
    except ValidationError as error:
        raise StackError(f"{path} is not a process table this flashsale can read ({error.error_count()} errors); "
                         "stop what it lists by hand, then delete it.") from None


def save(path: Path, state: State) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(state.model_dump_json(indent=2))
    os.replace(temporary, path)

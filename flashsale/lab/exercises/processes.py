"""The learner's function in processes of its own, as the services run it.

A service is a process, and the inventory and the order service run several at once. A check runs the learner's
function the same way: in fresh interpreters (spawn), never in threads of the kernel, where a lock or a dict of the
learner's would be shared as no two services share them, and never in a fork of a kernel full of threads. The
function was defined in a notebook cell, so it travels by value (cloudpickle); what it imports travels by name.

A check's kill points are built, not timed: a child kills itself (SIGKILL) at a point the check chose, after the
n-th batch or commit, so a check never depends on how fast the sale goes.
"""
import multiprocessing
import os
import signal
import time
import traceback
from multiprocessing.context import SpawnProcess

import cloudpickle

from flashsale.lab.exercises import Rule, Wrong

SPAWN = multiprocessing.get_context("spawn")


def pack(function, what: str, rule: Rule | None) -> bytes:
    """The learner's function, ready to cross into another process; a clear failure if it cannot."""
    try:
        return cloudpickle.dumps(function)
    except Exception as error:  # noqa: BLE001  (pickling fails in many ways, each the same news here)
        raise Wrong(f"your {what} cannot be sent to another process ({type(error).__name__}: {error}). The service "
                    "runs it in processes of its own: let it use what it is given and what it imports, not an "
                    "object of this kernel (a client, a connection, a lock, a script registered outside it)",
                    rule) from None


def unpack(packed: bytes):
    return cloudpickle.loads(packed)


def start(target, *args, name: str) -> SpawnProcess:
    """`target(*args)` in a fresh interpreter (it gets this one's sys.path); a daemon, so it dies with the kernel."""
    process = SPAWN.Process(target=target, args=args, name=name, daemon=True)
    process.start()
    return process


def stop(jobs: list, processes: list) -> None:
    """Tell each worker there is no more work (None on its queue), wait for it a little, kill it if it hangs."""
    for queue in jobs:
        queue.put(None)
    for process in processes:
        process.join(5)
        if process.is_alive():
            process.kill()


def die() -> None:
    """A crash, as `kill -9` makes it: no cleanup, no flush, no goodbye to the group."""
    os.kill(os.getpid(), signal.SIGKILL)


def failure() -> str:
    """The exception being handled, as text for the parent: the learner's traceback, without the check's frames."""
    return "".join(traceback.format_exc(limit=-8)).strip()


class ChildFailed(Exception):
    """The learner's code raised in one of the check's processes; the message carries its traceback."""


def until(condition, timeout: float) -> None:
    """Wait for `condition()` (the check's own processes reaching a point), at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def waits_for_a_lock(watcher, application_name: str) -> bool:
    """Whether the connection named so (one of the check's processes) waits for a lock another transaction holds:
    PostgreSQL's own view of it, pg_stat_activity."""
    return watcher.execute("SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = %s "
                           "AND wait_event_type = 'Lock'", (application_name,)).fetchone()[0] is True

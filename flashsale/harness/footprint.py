"""What a running stack costs while nobody buys: its idle CPU and its unique memory.

The bench reports both (`idle_cpu_pct`, `stack_uss_mib`), `flashsale doctor --start` the memory; one function
each, so the figures mean the same everywhere. Every process of `stack.json` counts, with its children
(PostgreSQL's backends): CPU as in harness/cpu.py (utime + stime, reaped children included), memory as USS,
the pages only that process maps: what stopping the stack frees (RSS counts shared libraries once per process).
"""
import contextlib
import time
from dataclasses import dataclass

import psutil

from flashsale.harness.cpu import Meter
from flashsale.readable import Readable
from flashsale.stack.control import Stack
from flashsale.stack.processes import family

MIB = 2**20


@dataclass(frozen=True)
class Footprint(Readable):
    idle_cpu_pct: float  # % of one core, summed over the stack, over `seconds`
    idle_cpu_pct_by_component: dict[str, float]
    seconds: float
    stack_uss_mib: float
    processes: int


def components(stack: Stack) -> dict[int, str]:
    """Every process the stack started, pid -> component (the instances of one service share their name)."""
    return {process.pid: process.service or name for name, process in stack.processes().items()}


def stack_memory(stack: Stack) -> tuple[int, int]:
    """Unique memory (USS) summed over every process of the stack and their children, and how many processes."""
    pids = {pid for root in components(stack) for pid in family(root)}
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):  # gone meanwhile (a PostgreSQL backend whose client left)
            total += psutil.Process(pid).memory_full_info().uss
    return total, len(pids)


def idle_footprint(stack: Stack, seconds: float) -> Footprint:
    """The stack's CPU over `seconds` in which nobody buys, as % of one core, then its memory."""
    meter = Meter(components(stack)).start()
    started = time.monotonic()
    time.sleep(seconds)
    spent = meter.stop()
    elapsed = time.monotonic() - started
    uss, count = stack_memory(stack)
    by_component = {name: round(cpu * 100 / elapsed, 2) for name, cpu in sorted(spent.items())}
    return Footprint(round(sum(spent.values()) * 100 / elapsed, 2), by_component, round(elapsed, 1),
                     round(uss / MIB, 1), count)

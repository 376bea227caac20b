"""Measure the broker modes side by side (issue 26): start, idle CPU and memory, races in a row.

    python tools/broker_modes.py --mode fast --mode durable --mode kafka --races 10 --json modes.json

Each mode gets a fresh home and free ports: `flashsale up`'s time to healthy; then, after 10 s to settle, CPU
summed over every process of stack.json (and their children) for 20 s, as % of one core, and their unique memory
(USS, psutil); then `--races` event-driven races of 1,000 buyers for 100 units in a row (accepted/s, settled s,
lost), CPU per accepted order over all of them. The load average is recorded beside every figure: the machine
is shared, and a figure read at a load of 5 on two cores says so.
"""
import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import psutil

from flashsale.harness.cpu import tree_seconds
from flashsale.harness.races import race
from flashsale.settings import Settings
from flashsale.stack.control import Stack
from flashsale.stack.processes import free_port

MODES = {"fast": {"broker": "tansu", "durable": False}, "durable": {"broker": "tansu", "durable": True},
         "kafka": {"broker": "kafka"}}


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def pids(stack: Stack) -> list[int]:
    return [p.pid for p in stack.processes().values()]


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def idle(stack: Stack, seconds: float = 20) -> dict[str, object]:
    started = {pid: tree_seconds(pid) for pid in pids(stack)}
    at, load_before = time.monotonic(), load()
    time.sleep(seconds)
    spent = sum(tree_seconds(pid) - before for pid, before in started.items())
    cpu = 100 * spent / (time.monotonic() - at)
    uss = sum(p.memory_full_info().uss for pid in pids(stack) for p in tree(pid)) / 2**20
    return {"idle_cpu_pct": round(cpu, 1), "uss_mib": round(uss), "load": f"{load_before} -> {load()}"}


def races(stack: Stack, n: int, stock: int = 100) -> dict[str, object]:
    """`n` races of 1,000 buyers; with `stock` 1,000 every buyer is accepted (no early 409): accepted/s and CPU per
    order then measure the whole path; with 100 (the demo's race), most buyers get a quick 409."""
    cpu_before = sum(tree_seconds(pid) for pid in pids(stack))
    rows, accepted = [], 0
    for _ in range(n):
        outcome = race(stack, "event-driven", stock=stock, progress=False)
        accepted += len(outcome.race.accepted)
        rows.append({"accepted_per_s": round(outcome.race.accepted_per_s), "wall_s": round(outcome.race.wall_s, 2),
                     "settled_s": outcome.settled_s and round(outcome.settled_s, 2),
                     "accepted": len(outcome.race.accepted), "lost": outcome.lost,
                     "oversold": outcome.oversold, "load": load()})
    cpu_ms = 1000 * (sum(tree_seconds(pid) for pid in pids(stack)) - cpu_before) / max(1, accepted)
    return {"races": rows, "cpu_ms_per_accepted_order": round(cpu_ms, 1)}


def measure(mode: str, n_races: int) -> dict[str, object]:
    home = Path(tempfile.mkdtemp(prefix=f"durable-modes-{mode}-"))
    stack = Stack(Settings(home=home, gateway_port=free_port(), shop_port=free_port(), psp_port=free_port(),
                           **MODES[mode]))
    load_before, at = load(), time.monotonic()
    try:
        stack.up(timeout=300)
        result: dict[str, object] = {"mode": mode, "profile": stack.profile.name,
                                     "up_s": round(time.monotonic() - at, 1), "up_load": load_before}
        time.sleep(10)
        result |= idle(stack)
        result["all_accepted"] = races(stack, 3, stock=1000)
        result |= races(stack, n_races)
        return result
    finally:
        stack.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", action="append", choices=sorted(MODES))
    parser.add_argument("--races", type=int, default=10)
    parser.add_argument("--json", type=Path, default=Path("broker-modes.json"))
    args = parser.parse_args()
    results = []
    for mode in args.mode or list(MODES):
        results.append(measure(mode, args.races))
        print(json.dumps(results[-1]), flush=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

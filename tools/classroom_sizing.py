"""Measure one learner for docs/classroom.md's sizing table: memory and CPU at idle and during a 1,000-buyer race.

    python tools/classroom_sizing.py                          # both brokers, 30 s idle, 3 races each (as root)
    python tools/classroom_sizing.py --broker kafka --idle-s 60 --races 5 --json sizing.json

A learner, as the classroom hub runs one: JupyterLab's server, a kernel, and the stack a notebook starts in that
kernel (`lab.start`), all in one cgroup v1 group (classroom/cgroups.py; the server joins it before it runs, so
everything it starts is counted). The kernel is driven over the server's WebSocket, as a browser drives it.

- idle: the stack up, no orders, for `--idle-s` seconds after 10 s to settle. CPU: the group's cpuacct.usage over
  that time, in % of one core. Memory: the group's working set (charged memory less inactive page cache), its
  median over the idle time.
- race: `lab.flash_sale(stack, "gateway", buyers=1000, stock=100)`, notebook 03's race without the dashboard: a new
  sale, 1,000 buyers at once from the kernel, every order settled. CPU: the group's CPU seconds for the race, and
  those over its wall time (cores busy while it ran). Memory: the working set's peak, sampled every 0.2 s, and the
  cgroup's own peak (`memory.max_usage_in_bytes`, page cache included).

The figures are this machine's, with whatever else runs on it: say so next to them, and measure again after a
change that touches the idle loop (issue 22, point 5).
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "classroom"), str(ROOT / "tools")]

from cgroups import Cgroup  # noqa: E402
from remote_kernel import Kernel, jupyterlab  # noqa: E402

MIB = 2**20
EMPTY_NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


class Peak(threading.Thread):
    """The group's working set, sampled every 0.2 s: its peak, and every sample."""

    def __init__(self, group: Cgroup):
        super().__init__(daemon=True)
        self.group, self.samples, self.done = group, [], threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.samples.append(self.group.working_set_bytes())

    def stop(self) -> list[int]:
        self.done.set()
        self.join()
        return self.samples


def run(kernel: Kernel, code: str) -> str:
    outputs, error = kernel.execute(code)
    if error:
        raise RuntimeError(f"{code!r} raised {error}")
    return "".join(out.get("text", "") for out in outputs if out["output_type"] == "stream")


def measure(broker: str, idle_s: float, races: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"flashsale-sizing-{broker}-"))
    (folder / "sizing.ipynb").write_text(json.dumps(EMPTY_NOTEBOOK))
    group = Cgroup(f"flashsale-sizing-{os.getpid()}").create()
    env = {**os.environ, "FLASHSALE_HOME": str(folder / "home"), "FLASHSALE_BROKER": broker}
    try:
        with jupyterlab(folder, env, folder / "lab.log", preexec_fn=group.join) as (_, url, token), \
                Kernel(url, token, "sizing.ipynb") as kernel:
            started = time.monotonic()
            run(kernel, "from flashsale import lab\nstack = lab.start('sizing')")
            up_s = time.monotonic() - started
            time.sleep(10)  # the stack's start-up work done
            sampler = Peak(group)
            sampler.start()
            cpu = group.cpu_seconds()
            time.sleep(idle_s)
            idle_cpu_pct = (group.cpu_seconds() - cpu) / idle_s * 100
            idle_ws = statistics.median(sampler.stop())
            results = []
            for _ in range(races):
                group.reset_peak()
                sampler = Peak(group)
                sampler.start()
                cpu, started = group.cpu_seconds(), time.monotonic()
                said = run(kernel, "sale = lab.flash_sale(stack, 'gateway', buyers=1000, stock=100)\n"
                                   "print(sale.sold, sale.oversold, sale.lost)")
                if said.split() != ["100", "0", "0"]:  # a race that did not sell out cleanly measures nothing
                    raise RuntimeError(f"the race on {broker} sold, oversold, lost: {said.split()}: not a measure")
                wall, cpu_s = time.monotonic() - started, group.cpu_seconds() - cpu
                results.append({"seconds": round(wall, 2), "cpu_s": round(cpu_s, 2),
                                "cores_busy": round(cpu_s / wall, 2),
                                "working_set_peak_mib": round(max(sampler.stop()) / MIB),
                                "charged_peak_mib": round(group.peak_bytes() / MIB),
                                "sold_oversold_lost": said.split()})
                time.sleep(3)
            run(kernel, "print(lab.stop(stack))")
        return {"broker": broker, "stack_up_s": round(up_s, 1), "idle_s": idle_s,
                "idle_cpu_pct": round(idle_cpu_pct, 1), "idle_working_set_mib": round(idle_ws / MIB),
                "races": results}
    finally:
        group.remove()  # stops whatever is left of the learner
        shutil.rmtree(folder, ignore_errors=True)


def fit(rows: list[dict], cores: int = 16, gib: int = 64, reserve_gib: int = 4) -> list[str]:
    """How many learners a machine holds, by each limit, from the worst broker's figures."""
    worst_ws = max(r["working_set_peak_mib"] for row in rows for r in row["races"])
    worst_idle = max(row["idle_cpu_pct"] for row in rows)
    race_cpu = max(r["cpu_s"] for row in rows for r in row["races"])
    by_memory = int((gib - reserve_gib) * 1024 // worst_ws)
    by_idle_cpu = int(cores * 100 * 0.5 // worst_idle)  # idle stacks take at most half the cores
    return [f"memory: ({gib} - {reserve_gib}) GiB / {worst_ws} MiB per learner at a race's peak = {by_memory}",
            f"idle CPU: half of {cores} cores / {worst_idle}% of a core per idle learner = {by_idle_cpu}",
            f"a race: {race_cpu} CPU-s; {cores} cores settle {cores / race_cpu:.1f} races a second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", action="append", choices=("tansu", "kafka"))
    parser.add_argument("--idle-s", type=float, default=30)
    parser.add_argument("--races", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = [measure(broker, args.idle_s, args.races) for broker in args.broker or ("tansu", "kafka")]
    print("| broker | idle: CPU, % of a core | idle: working set | race: CPU-s | race: cores busy "
          "| race: working set peak | race: charged peak |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        races = row["races"]
        print(f"| {row['broker']} | {row['idle_cpu_pct']}% | {row['idle_working_set_mib']} MiB "
              f"| {min(r['cpu_s'] for r in races)}-{max(r['cpu_s'] for r in races)} "
              f"| {min(r['cores_busy'] for r in races)}-{max(r['cores_busy'] for r in races)} "
              f"| {max(r['working_set_peak_mib'] for r in races)} MiB "
              f"| {max(r['charged_peak_mib'] for r in races)} MiB |")
    print("\n".join(fit(rows)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

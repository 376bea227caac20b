"""What an idle stack spends its CPU on: the bench's idle figure by component, then the busiest threads.

    python tools/idle_threads.py --broker kafka --settle 90 --seconds 60

It brings a stack up in a home of its own on free ports, lets it settle (a JVM compiles what its timers run for a
minute or more after start), measures `idle_footprint` (harness/footprint.py: the same figure as the bench's
`idle_cpu_pct`) and, over the same seconds, each thread's CPU, by its name in /proc (`C2 CompilerThre`,
`tokio-rt-worker`, `rdk:main`...): the figure that says which clock to slow down. Then it takes the stack down and
removes its home.
"""
import argparse
import os
import time
from pathlib import Path

import psutil
from scratch import scratch_stack  # tools/scratch.py

from flashsale.harness.footprint import components, idle_footprint
from flashsale.stack.control import Stack
from flashsale.stack.processes import family

Thread = tuple[str, int, int, str]  # component, pid, thread id, thread name


def thread_times(stack: Stack) -> dict[Thread, float]:
    """Every thread of every process of the stack (children included): its CPU seconds so far."""
    times = {}
    for root, component in components(stack).items():
        for pid in family(root):
            try:
                for thread in psutil.Process(pid).threads():
                    name = Path(f"/proc/{pid}/task/{thread.id}/comm").read_text().strip()
                    times[(component, pid, thread.id, name)] = thread.user_time + thread.system_time
            except (psutil.Error, OSError):  # gone meanwhile: a PostgreSQL backend whose client left
                continue
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=("tansu", "kafka"), default=os.environ.get("FLASHSALE_BROKER", "tansu"))
    parser.add_argument("--settle", type=float, default=90, help="seconds after `up` before measuring")
    parser.add_argument("--seconds", type=float, default=60, help="seconds measured")
    parser.add_argument("--threads", type=int, default=20, help="how many of the busiest threads to list")
    args = parser.parse_args()
    with scratch_stack(args.broker, "flashsale-idle-") as stack:
        time.sleep(args.settle)
        before = thread_times(stack)
        footprint = idle_footprint(stack, args.seconds)
        after = thread_times(stack)
    print(f"{footprint.idle_cpu_pct}% of a core over {footprint.seconds} s, {footprint.stack_uss_mib} MiB unique")
    for component, pct in sorted(footprint.idle_cpu_pct_by_component.items(), key=lambda item: -item[1]):
        print(f"  {pct:5.2f}%  {component}")
    spent = {thread: (cpu - before.get(thread, 0)) * 100 / footprint.seconds for thread, cpu in after.items()}
    print("busiest threads:")
    for (component, pid, tid, name), pct in sorted(spent.items(), key=lambda item: -item[1])[:args.threads]:
        print(f"  {pct:5.2f}%  {component} {name} (pid {pid}, thread {tid})")


if __name__ == "__main__":
    main()

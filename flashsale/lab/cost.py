"""CPU per order, live: what each component of the stack spends on one order, over the last few seconds.

The same counters as `flashsale bench` (`harness.cpu.tree_seconds`: utime + stime of a process and its children,
from /proc), read once a second for each process the stack started, and divided by the orders settled
(confirmed or cancelled) in the same seconds. The notebook's kernel, where the buyers and the dashboard run,
is no process of the stack, so the load generator is left out, as in the bench.

A process seen for the first time (a restart, a new instance) starts from what it has spent by then: its
start-up is not charged to the orders of the moment.
"""
from collections import deque

import psutil

from flashsale.harness.cpu import per_unit_ms, tree_seconds

WINDOW_S = 5.0  # the seconds each figure covers


def per_order_ms(samples) -> dict | None:
    """From (seconds, {component: CPU seconds so far}, orders settled so far) samples, oldest first:
    {"ms": {component: ms per order, ..., "total": ms}, "orders": n, "seconds": s}, or None if none settled."""
    if len(samples) < 2:
        return None
    (t0, before, settled0), (t1, after, settled1) = samples[0], samples[-1]
    orders = settled1 - settled0
    if orders <= 0:
        return None
    spent = {component: after[component] - before.get(component, 0.0) for component in after}
    return {"ms": per_unit_ms(spent, orders), "orders": orders, "seconds": round(t1 - t0, 1)}


class Cost:
    """Feed it a `sample()` a second; `per_order()` is the cost over the last `WINDOW_S` seconds."""

    def __init__(self, window_s: float = WINDOW_S, read=tree_seconds):
        self.window_s, self.read = window_s, read
        self.samples: deque = deque()
        self.spent: dict[str, float] = {}  # component -> CPU seconds since the first sample; never falls
        self._seen: dict[int, float] = {}  # pid -> its tree's CPU seconds at the last sample

    def sample(self, processes: dict[int, str], settled: int, now: float) -> None:
        """`processes`: pid -> component; `settled`: the sale's confirmed + cancelled orders; `now`: seconds."""
        seen = {}
        for pid, component in processes.items():
            self.spent.setdefault(component, 0.0)
            try:
                seen[pid] = self.read(pid)
            except psutil.Error:  # killed on purpose, or gone between listing and reading
                continue
            self.spent[component] += max(0.0, seen[pid] - self._seen.get(pid, seen[pid]))
        self._seen = seen
        if self.samples and settled < self.samples[-1][2]:  # a new sale: its orders count from zero
            self.samples.clear()
        self.samples.append((now, dict(self.spent), settled))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window_s:
            self.samples.popleft()

    def per_order(self) -> dict | None:
        return per_order_ms(list(self.samples))

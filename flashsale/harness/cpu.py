"""CPU time spent by the stack's own processes, read from /proc: what each component costs per order.

Each component is a process tree: the process the stack started and its children (PostgreSQL's postmaster
and its backends; the JVM's own threads are in its one process). A process's time is utime + stime, plus
cutime + cstime: the time of children that have exited and been waited for (a PostgreSQL backend ends
when its connection closes, and its postmaster reaps it). So a child counted live in one reading and reaped
by the next is counted once either way.

The load generator is left out by construction: the bench's buyers (this process, `wrk`, the browser
processes of the fan-out run) are not in any component's tree.
"""
import psutil


def tree_seconds(pid: int) -> float:
    """CPU seconds of a process and all of its descendants, the exited and reaped ones included."""
    root = psutil.Process(pid)
    total = 0.0
    for process in (root, *root.children(recursive=True)):
        try:
            t = process.cpu_times()
        except psutil.NoSuchProcess:  # gone between the listing and the reading: its parent's children_* has it
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


class Meter:
    """CPU seconds per component between `start()` and `stop()`; the instances of one service add up."""

    def __init__(self, processes: dict[int, str]):
        self.processes = processes  # pid -> component: {4242: "inventory", 4243: "inventory", 4100: "kafka"}
        self._before: dict[str, float] = {}

    def read(self) -> dict[str, float]:
        spent: dict[str, float] = {}
        for pid, component in self.processes.items():
            spent[component] = spent.get(component, 0.0) + tree_seconds(pid)
        return spent

    def start(self) -> "Meter":
        self._before = self.read()
        return self

    def stop(self) -> dict[str, float]:
        return {component: spent - self._before.get(component, 0.0) for component, spent in self.read().items()}


def per_unit_ms(seconds: dict[str, float], units: int) -> dict[str, float]:
    """Milliseconds of CPU per unit (order, request), per component and in `total`."""
    per = {component: round(spent * 1000 / units, 3) for component, spent in sorted(seconds.items())}
    return {**per, "total": round(sum(seconds.values()) * 1000 / units, 3)}

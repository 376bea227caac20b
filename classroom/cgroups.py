"""A cgroup v1 group for one process tree: a memory limit, a CPU quota, and what the tree used.

The classroom's spawner gives each learner one (so one learner's 1,000-buyer race cannot take the machine from
the others), and the tests and `tools/classroom_sizing.py` measure a learner with one. A process joins before it
runs anything (`join` in a `preexec_fn`), so everything it starts joins too: its kernels, and every server and
service of every stack they start (`start_new_session` changes the session, not the cgroup).

The group is made under the group this process is already in, in each hierarchy (`/proc/self/cgroup`): the
machine's own accounting keeps seeing what runs in it. cgroup v1 only (memory, cpu, cpuacct): that is what this
project's machines have. A machine with systemd and cgroup v2 has `systemdspawner` for the classroom instead.
"""
import contextlib
import os
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpu", "cpuacct")
PERIOD_US = 100_000  # the CFS period the CPU quota is a share of


class CgroupError(RuntimeError):
    """The machine has no writable cgroup v1 controller of that name: say which, and what works instead."""


def available(root: Path = ROOT) -> bool:
    """Whether every controller this module needs is mounted as cgroup v1 and writable by us."""
    return all((root / name / "cgroup.procs").exists() and os.access(root / name, os.W_OK) for name in CONTROLLERS)


def _own(controller: str) -> str:
    """This process's group in one v1 hierarchy, from /proc/self/cgroup (`4:memory:/some/group`)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if controller in names.split(","):
            return path.lstrip("/")
    raise CgroupError(f"this process is in no cgroup v1 {controller} hierarchy (/proc/self/cgroup)")


class Cgroup:
    """One group, by name, in the memory, cpu and cpuacct hierarchies."""

    def __init__(self, name: str, root: Path = ROOT):
        if not available(root):
            raise CgroupError(f"no writable cgroup v1 {'/'.join(CONTROLLERS)} under {root}: on a machine with "
                              f"systemd, use systemdspawner (docs/classroom.md)")
        self.name = name
        self.dirs = {controller: root / controller / _own(controller) / name for controller in CONTROLLERS}

    def create(self, memory_bytes: int | None = None, cpus: float | None = None) -> "Cgroup":
        """Make the group (again, if it is there and empty) with its limits; None leaves one unlimited."""
        for folder in self.dirs.values():
            folder.mkdir(exist_ok=True)
        memory = self.dirs["memory"]
        if memory_bytes is not None:
            # memsw (memory + swap) must stay >= memory: raise it first, lower it last, so every write is accepted
            memsw = memory / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                memsw.write_text("-1")
            (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
            if memsw.exists():  # no swap to escape to: the limit is the limit
                memsw.write_text(str(memory_bytes))
        quota = -1 if cpus is None else int(cpus * PERIOD_US)
        (self.dirs["cpu"] / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (self.dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(quota))
        return self

    def join(self, pid: int = 0) -> None:
        """Move a process (0: the caller) into the group; what it starts afterwards is born in it."""
        for folder in self.dirs.values():
            (folder / "cgroup.procs").write_text(str(pid or os.getpid()))

    def pids(self) -> set[int]:
        """Every process in the group now (the memory hierarchy's view; `join` puts a process in all three)."""
        text = (self.dirs["memory"] / "cgroup.procs").read_text()
        return {int(pid) for pid in text.split()}

    def _read(self, controller: str, name: str) -> int:
        return int((self.dirs[controller] / name).read_text())

    def limit_bytes(self) -> int:
        return self._read("memory", "memory.limit_in_bytes")

    def cpu_quota(self) -> float | None:
        """The CPU limit in cores, None when unlimited."""
        quota = self._read("cpu", "cpu.cfs_quota_us")
        return None if quota < 0 else quota / self._read("cpu", "cpu.cfs_period_us")

    def peak_bytes(self) -> int:
        """The most memory the group was charged since it was made or `reset_peak` (page cache included)."""
        return self._read("memory", "memory.max_usage_in_bytes")

    def reset_peak(self) -> None:
        (self.dirs["memory"] / "memory.max_usage_in_bytes").write_text("0")

    def stat(self) -> dict[str, int]:
        lines = (self.dirs["memory"] / "memory.stat").read_text().splitlines()
        return {key: int(value) for key, value in (line.split() for line in lines)}

    def working_set_bytes(self) -> int:
        """Charged memory less the page cache the kernel may drop first (inactive files): what cAdvisor and
        Kubernetes call the working set, the figure an out-of-memory kill is near."""
        return self._read("memory", "memory.usage_in_bytes") - self.stat()["total_inactive_file"]

    def limit_hits(self) -> int:
        """How often the group's memory reached its limit (and the kernel had to reclaim or kill); with swap
        accounting on, the memory + swap limit (set equal) is the one that counts them."""
        memsw = self.dirs["memory"] / "memory.memsw.failcnt"
        return self._read("memory", "memory.failcnt") + (int(memsw.read_text()) if memsw.exists() else 0)

    def oom_kills(self) -> int:
        """Processes the kernel killed for lack of memory in this group."""
        lines = (self.dirs["memory"] / "memory.oom_control").read_text().splitlines()
        return next((int(line.split()[1]) for line in lines if line.startswith("oom_kill ")), 0)

    def cpu_seconds(self) -> float:
        """CPU time every process of the group has used, alive or gone, since the group was made."""
        return self._read("cpuacct", "cpuacct.usage") / 1e9

    def stop_all(self, grace_s: float = 10) -> list[int]:
        """SIGTERM every process left in the group, SIGKILL what is still there after `grace_s`; the pids found."""
        found = self.pids()
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.1)
            found |= self.pids()
        return sorted(found)

    def remove(self) -> None:
        """Stop what is left and delete the group in every hierarchy."""
        if self.dirs["memory"].exists():
            self.stop_all()
        for folder in self.dirs.values():
            with contextlib.suppress(FileNotFoundError):
                folder.rmdir()

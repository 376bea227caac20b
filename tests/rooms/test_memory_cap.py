"""Binder gives a session about 2 GB: JupyterLab's server, a kernel and notebook 03 with its whole stack fit in 2 GiB.

The server starts inside a cgroup v1 memory group limited to 2 GiB (it joins before it runs: `preexec_fn`), so
its kernel and every server and service of the notebook's stack are born in the group. The notebook runs through
that server's kernel, as a browser would drive it (tools/remote_kernel.py). On both brokers: Apache Kafka's JVM
is the heavier. The peak is printed, and docs/classroom.md keeps the figures with this command:

    FLASHSALE_BROKER=kafka pytest tests/rooms/test_memory_cap.py -s
"""
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cgroups import Cgroup, available
from lab_processes import clean_up, ledger, survivors
from remote_kernel import jupyterlab, run_notebook

from flashsale.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BINDER_BYTES = 2 * 2**30
MIB = 2**20


class Sampler(threading.Thread):
    """Every 0.2 s: which processes are in the group, and its working set (the cgroup keeps the charged peak)."""

    def __init__(self, group: Cgroup):
        super().__init__(daemon=True)
        self.group, self.seen, self.working_set_peak = group, set(), 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.seen |= self.group.pids()
            self.working_set_peak = max(self.working_set_peak, self.group.working_set_bytes())


@pytest.mark.timeout(900)
@pytest.mark.skipif(not available(), reason="needs a writable cgroup v1 memory, cpu and cpuacct (root)")
def test_notebook_03_runs_with_jupyterlab_and_its_whole_stack_within_binders_2_gib(tmp_path):
    broker = Settings().broker
    group = Cgroup(f"flashsale-binder-{os.getpid()}").create(memory_bytes=BINDER_BYTES)
    sampler = Sampler(group)
    home = tmp_path / "03-event-driven"  # lab.start(name) puts the stack in <FLASHSALE_HOME>/<name>
    env = {**os.environ, "FLASHSALE_HOME": str(tmp_path)}
    try:
        sampler.start()
        with jupyterlab(ROOT, env, tmp_path / "lab.log", preexec_fn=group.join) as (server, url, token):
            cells = run_notebook(url, token, "notebooks/03-event-driven.ipynb")
            assert server.pid in sampler.seen, "the Jupyter server ran outside the group"
        sampler.done.set()
        sampler.join()
        peak, hits, kills = group.peak_bytes(), group.limit_hits(), group.oom_kills()
        print(f"\nnotebook 03 on {broker} under a {BINDER_BYTES // MIB} MiB cap: peak {peak / MIB:,.0f} MiB charged "
              f"(page cache included), working set peak {sampler.working_set_peak / MIB:,.0f} MiB, "
              f"{len(sampler.seen)} processes in the group, {sum(c.seconds for c in cells):.0f} s of cells, "
              f"limit reached {hits} times, {kills} killed for memory")
        assert kills == 0, f"the kernel killed {kills} processes of the group for lack of memory"
        stack_pids = ledger(home)
        assert stack_pids, f"notebook 03 started no stack in {home}"
        assert stack_pids <= sampler.seen, f"stack processes outside the group: {sorted(stack_pids - sampler.seen)}"
        assert survivors(home) == [], "notebook 03 left processes of its stack running"
    finally:
        sampler.done.set()
        clean_up(home)
        group.remove()


@pytest.mark.broker_free
@pytest.mark.skipif(not available(), reason="needs a writable cgroup v1 memory, cpu and cpuacct (root)")
def test_a_process_that_outgrows_the_group_is_killed_and_counted_so_the_cap_above_is_real():
    """The wrong answer the test above must catch: a stack that needs more than the cap. 64 MiB, 200 MiB asked."""
    group = Cgroup(f"flashsale-cap-proof-{os.getpid()}").create(memory_bytes=64 * MIB)
    try:
        hungry = subprocess.run([sys.executable, "-c", "x = bytearray(200 * 2**20)"], preexec_fn=group.join)
        assert hungry.returncode == -signal.SIGKILL
        assert group.oom_kills() == 1
        assert group.peak_bytes() <= 64 * MIB
    finally:
        group.remove()

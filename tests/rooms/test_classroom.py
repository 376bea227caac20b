"""A class on one machine: a real JupyterHub and its proxy, classroom/jupyterhub_config.py, three learners at once.

Through the hub's REST API (a service token with admin:users, admin:servers and access:servers, as a teacher's
script would hold) each learner is created and their server started; then, all at the same time, each learner
runs notebook 01 and exercise 10's solution through their own server's kernel, behind the hub's proxy
(tools/remote_kernel.py: the server's REST API and the kernel's WebSocket, as a browser drives them). Meanwhile a
watcher notes every process, each learner's listening ports and FLASHSALE_HOME, and each learner's cgroup.

The hub's outcome does not depend on the broker (each notebook is tested on both elsewhere): it runs in the
tansu pass only.
"""
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from cgroups import Cgroup, available
from hub import Hub, jupyterhub, start_learner
from lab_processes import ledger
from remote_kernel import run_notebook

LEARNERS = ("ada", "grace", "linus")
NOTEBOOKS = ("notebooks/01-oversell.ipynb", "notebooks/solutions/10-idempotent-reservation.ipynb")
MEMORY, CPUS = 2 * 2**30, 1.0  # the config's defaults: FLASHSALE_LEARNER_MEMORY=2G, FLASHSALE_LEARNER_CPUS=1

pytestmark = [pytest.mark.broker_free,
              pytest.mark.skipif(not available(), reason="needs a writable cgroup v1 memory, cpu and cpuacct (root)")]


class Watcher(threading.Thread):
    """Every second: each learner's processes (by their cgroup), the ports they listen on, their FLASHSALE_HOMEs,
    the limits of their group; and every process the hub has, so that none may outlive it."""

    def __init__(self, hub: Hub):
        super().__init__(daemon=True)
        self.hub, self.done = hub, threading.Event()
        self.seen: set[tuple[int, float]] = set()  # (pid, start time): a pid alone may be reused
        self.ports: dict[str, set[int]] = {name: set() for name in LEARNERS}
        self.homes: dict[str, set[str]] = {name: set() for name in LEARNERS}
        self.limits: dict[str, tuple[int, float | None]] = {}

    def run(self) -> None:
        while not self.done.wait(1.0):
            self.look()

    def look(self) -> None:
        owner = {}
        for name in LEARNERS:
            group = Cgroup(f"flashsale-learner-{name}")
            try:
                pids = group.pids()
                self.limits[name] = (group.limit_bytes(), group.cpu_quota())
            except FileNotFoundError:
                continue
            owner.update(dict.fromkeys(pids, name))
            for pid in pids:
                try:
                    process = psutil.Process(pid)
                    self.seen.add((pid, process.create_time()))
                    if home := process.environ().get("FLASHSALE_HOME"):
                        self.homes[name].add(home)
                except psutil.Error:
                    continue
        for process in self.hub.processes():
            with_time = (process.pid, process.create_time())
            self.seen.add(with_time)
        for conn in psutil.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN and conn.pid in owner:
                self.ports[owner[conn.pid]].add(conn.laddr.port)


def still_running(seen: set[tuple[int, float]]) -> list[str]:
    left = []
    for pid, started in seen:
        try:
            process = psutil.Process(pid)
            if process.create_time() == started and process.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{pid} {process.name()}")
        except psutil.NoSuchProcess:
            continue
    return left


def learner(hub: Hub, name: str) -> list[str]:
    with hub.api() as api:
        start_learner(api, name)
    done = []
    for notebook in NOTEBOOKS:  # through the hub's proxy, to this learner's own server
        run_notebook(f"{hub.url}/user/{name}/", hub.token, notebook)
        done.append(notebook)
    return done


@pytest.mark.timeout(1200)
def test_three_learners_run_lessons_at_once_on_jupyterhub_apart_and_leave_nothing_when_it_stops(tmp_path: Path):
    with jupyterhub(tmp_path / "hub") as hub:
        watcher = Watcher(hub)
        watcher.start()
        try:
            with ThreadPoolExecutor(len(LEARNERS)) as pool:
                runs = {name: pool.submit(learner, hub, name) for name in LEARNERS}
                done = {name: run.result() for name, run in runs.items()}  # re-raises a learner's failing cell
            watcher.look()
        finally:
            watcher.done.set()
            watcher.join()
        assert done == dict.fromkeys(LEARNERS, list(NOTEBOOKS))
        for name in LEARNERS:
            home = hub.homes() / name
            assert watcher.limits[name] == (MEMORY, CPUS), f"{name}'s group is not limited as configured"
            mine = home / ".flashsale"  # the kernel's; each notebook's stack runs its services in a folder of it
            homes = [Path(h) for h in watcher.homes[name]]
            assert homes and all(h == mine or mine in h.parents for h in homes), f"{name}'s FLASHSALE_HOME: {homes}"
            for notebook in ("01-oversell", "10-idempotent-reservation"):
                assert ledger(home / ".flashsale" / notebook), f"{name}'s {notebook} ran no stack in their home"
        for i, one in enumerate(LEARNERS):
            for other in LEARNERS[i + 1:]:
                shared = watcher.ports[one] & watcher.ports[other]
                assert not shared, f"{one} and {other} both listened on {sorted(shared)}"
        print("\n" + "\n".join(f"{name}: listened on {len(watcher.ports[name])} ports" for name in LEARNERS))
    # the hub has stopped (SIGTERM): it stopped every learner's server, and the spawner emptied their groups
    assert still_running(watcher.seen) == [], "processes outlived the hub"
    for name in LEARNERS:
        assert not Cgroup(f"flashsale-learner-{name}").dirs["memory"].exists(), f"{name}'s cgroup outlived the hub"


@pytest.mark.timeout(300)
def test_an_idle_learners_server_is_culled_and_nothing_of_it_is_left(tmp_path: Path):
    with jupyterhub(tmp_path / "hub", {"FLASHSALE_CULL_IDLE_S": "10"}) as hub, hub.api() as api:
        start_learner(api, "idle")
        group = Cgroup("flashsale-learner-idle")
        server = set(group.pids())
        assert server, "the learner's server is not in its group"
        deadline = threading.Event()
        for _ in range(120):
            if not api.get("/hub/api/users/idle").json()["servers"]:
                break
            deadline.wait(1)
        else:
            pytest.fail("the idle server was still running 120 s after it started (culled after 10 s idle)")
        assert not group.dirs["memory"].exists(), "the culled learner's cgroup is still there"
        assert all(not psutil.pid_exists(pid) for pid in server), "the culled server's process is still running"
        assert "idle" in api.get("/hub/api/users").text, "culling stops the server; the learner and their files stay"

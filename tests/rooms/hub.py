"""A real JupyterHub (PyPI) with its real proxy (configurable-http-proxy, npm), run from classroom/jupyterhub_config.py.

The hub runs in a folder of the test's own (its database, cookie secret and the proxy's pid file land there), on
free loopback ports, with the learners' homes under the same folder and every learner's server as the hub's
account (`FLASHSALE_CLASSROOM_ACCOUNTS=shared`: this machine has no learner accounts). A second config file loads
the classroom's and adds one service whose token may create learners and start and use their servers, as a
teacher's script would.
"""
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from flashsale.stack.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "classroom" / "jupyterhub_config.py"

TEACHER = """
load_subconfig({config!r})
c.JupyterHub.services.append({{"name": "teacher", "api_token": {token!r}}})
c.JupyterHub.load_roles.append({{"name": "teacher", "services": ["teacher"],
                                 "scopes": ["admin:users", "admin:servers", "access:servers"]}})
"""


@dataclass
class Hub:
    url: str
    token: str
    folder: Path
    process: subprocess.Popen

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"token {self.token}"}, timeout=60)

    def homes(self) -> Path:
        return self.folder / "homes"

    def processes(self) -> list[psutil.Process]:
        """The hub and every process under it now: the proxy, the culler, and the learners' Jupyter servers (each
        learner's kernels and stacks are under their server, or in its cgroup once their parent is gone)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            hub = psutil.Process(self.process.pid)
            return [hub, *hub.children(recursive=True)]
        return []


def start_learner(api: httpx.Client, name: str, timeout: float = 180) -> dict:
    """Create the learner (POST /hub/api/users/NAME), start their server, wait until the hub says it is ready."""
    assert api.post(f"/hub/api/users/{name}").status_code == 201
    assert api.post(f"/hub/api/users/{name}/server").status_code in (201, 202)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = api.get(f"/hub/api/users/{name}").json()["servers"].get("")
        if server and server["ready"]:
            return server
        time.sleep(0.5)
    raise TimeoutError(f"{name}'s server was not ready within {timeout} s")


@contextlib.contextmanager
def jupyterhub(folder: Path, extra_env: dict[str, str] | None = None) -> Iterator[Hub]:
    """Start the hub and its proxy; on exit stop the hub with SIGTERM, as a teacher's Ctrl-C would."""
    assert shutil.which("configurable-http-proxy"), "configurable-http-proxy: `npm install -g configurable-http-proxy`"
    folder.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    (folder / "teacher_config.py").write_text(TEACHER.format(config=str(CONFIG), token=token))
    port, hub_port, proxy_api = free_port(), free_port(), free_port()
    env = {**os.environ, "FLASHSALE_CLASSROOM_ACCOUNTS": "shared", "FLASHSALE_CLASSROOM_PASSWORD": secrets.token_hex(8),
           "FLASHSALE_CLASSROOM_HOMES": str(folder / "homes" / "{username}"), **(extra_env or {})}
    argv = [sys.executable, "-m", "jupyterhub", "-f", str(folder / "teacher_config.py"),
            f"--JupyterHub.bind_url=http://127.0.0.1:{port}", f"--JupyterHub.hub_bind_url=http://127.0.0.1:{hub_port}",
            f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{proxy_api}",
            "--SharedAccountClassroomSpawner.solutions=True"]  # exercise 10's solution runs in the learner's home
    with open(folder / "hub.log", "ab") as log:
        process = subprocess.Popen(argv, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    hub = Hub(f"http://127.0.0.1:{port}", token, folder, process)
    try:
        deadline = time.monotonic() + 240  # a machine busy with other stacks took over 90 s here
        with hub.api() as api:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if api.get("/hub/api/").is_success and api.get("/hub/api/users").is_success:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the hub did not answer: see {folder / 'hub.log'}")
                time.sleep(0.5)
        yield hub
    finally:
        stop(process)
        orphan_proxy(folder)


def orphan_proxy(folder: Path) -> None:
    """A hub that failed to start (JupyterHub waits 10 s for its proxy, and a busy machine took 12 s here) leaves
    its proxy running: stop it, by the pid file the hub wrote beside its database."""
    pid_file = folder / "jupyterhub-proxy.pid"
    with contextlib.suppress(FileNotFoundError, ValueError, psutil.Error):
        proxy = psutil.Process(int(pid_file.read_text()))
        if "configurable-http-proxy" in " ".join(proxy.cmdline()):
            proxy.terminate()
            proxy.wait(10)


def stop(process: subprocess.Popen, timeout: float = 120) -> None:
    """SIGTERM the hub and wait: it stops every learner's server (cleanup_servers) and its proxy."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

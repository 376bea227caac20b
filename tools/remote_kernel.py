"""Run a notebook as a learner's browser does: through a Jupyter server's REST API and its kernel's WebSocket.

nbval and nbclient start a kernel of their own beside the test; a hosted learner's kernel is the one their
Jupyter server starts (on Binder, in a Codespace, on a JupyterHub behind its proxy). This client opens a
session on that server (`POST api/sessions`: the kernel starts in the notebook's folder, as in JupyterLab),
reads the notebook from the server (`GET api/contents`), sends each code cell as an `execute_request` over
`api/kernels/ID/channels`, and collects what the kernel answers. Like `pytest --nbval-lax`, a cell fails when it
raises, and a cell marked `# NBVAL_CHECK_OUTPUT` fails when it prints other than what the notebook holds.

    python tools/remote_kernel.py http://127.0.0.1:8888/ TOKEN notebooks/03-event-driven.ipynb
"""
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from websockets.sync.client import connect


@dataclass
class Cell:
    index: int
    source: str
    outputs: list[dict] = field(default_factory=list)
    error: str | None = None  # the traceback's last line when it raised, or how the output differed
    seconds: float = 0.0


class NotebookFailed(AssertionError):
    """A cell raised or printed the wrong thing: names the notebook, the cell and what went wrong."""


def _text(outputs: list[dict]) -> str:
    """What nbval compares: the streams and the plain-text results, joined."""
    parts = []
    for out in outputs:
        if out["output_type"] == "stream":
            parts.append("".join(out["text"]))
        elif out["output_type"] in ("execute_result", "display_data") and "text/plain" in out.get("data", {}):
            parts.append("".join(out["data"]["text/plain"]))
    return "".join(parts).strip()


class Kernel:
    """One session on a Jupyter server: its kernel, reached over HTTP and one WebSocket."""

    def __init__(self, base_url: str, token: str, path: str, timeout: float = 600):
        self.base = base_url.rstrip("/") + "/"
        self.headers = {"Authorization": f"token {token}"}
        self.http = httpx.Client(headers=self.headers, timeout=60)
        self.path, self.timeout = path, timeout
        answer = self.http.post(self.base + "api/sessions", json={
            "path": path, "type": "notebook", "name": path.rsplit("/", 1)[-1], "kernel": {"name": "python3"}})
        answer.raise_for_status()
        self.session_id, self.kernel_id = answer.json()["id"], answer.json()["kernel"]["id"]
        self.client_session = uuid.uuid4().hex
        ws_base = "ws" + self.base.removeprefix("http")
        self.exits = contextlib.ExitStack()
        self.ws = self.exits.enter_context(connect(
            f"{ws_base}api/kernels/{self.kernel_id}/channels?session_id={self.client_session}",
            additional_headers=self.headers, max_size=None, open_timeout=60))

    def notebook(self) -> dict:
        """The notebook as the server holds it (a learner's own copy, on a hub)."""
        answer = self.http.get(self.base + "api/contents/" + self.path, params={"content": 1})
        answer.raise_for_status()
        return answer.json()["content"]

    def execute(self, code: str, timeout: float | None = None) -> tuple[list[dict], str | None]:
        """Run `code` in the kernel: its outputs, in nbformat's shape, and its error's last line if it raised."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "learner",
                       "session": self.client_session, "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        outputs: list[dict] = []
        error, replied, idle = None, False, False
        deadline = time.monotonic() + (timeout or self.timeout)
        while not (replied and idle):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.path}: the kernel did not finish a cell within {timeout or self.timeout} s")
            message = json.loads(self.ws.recv(timeout=remaining))
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue  # a widget's comm traffic, or another cell's late output
            kind, content = message["msg_type"], message["content"]
            if kind == "status":
                idle = content["execution_state"] == "idle"
            elif kind == "execute_reply":
                replied = True
            elif kind == "stream":
                outputs.append({"output_type": "stream", "name": content["name"], "text": content["text"]})
            elif kind in ("execute_result", "display_data"):
                outputs.append({"output_type": kind, "data": content["data"]})
            elif kind == "error":
                error = f"{content['ename']}: {content['evalue']}"
                outputs.append({"output_type": "error", "ename": content["ename"], "evalue": content["evalue"]})
        return outputs, error

    def close(self) -> None:
        """End the session: the server shuts its kernel down (the lab's atexit stops the notebook's stack)."""
        try:
            self.exits.close()
            self.http.delete(self.base + f"api/sessions/{self.session_id}")
        finally:
            self.http.close()

    def __enter__(self) -> "Kernel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_notebook(base_url: str, token: str, path: str, timeout: float = 600) -> list[Cell]:
    """Every code cell of `path`, top to bottom, in a new kernel of the server; stops at the first failing cell
    and raises NotebookFailed naming it. The cells run, with their outputs and seconds, when all pass."""
    cells: list[Cell] = []
    with Kernel(base_url, token, path, timeout) as kernel:
        for index, cell in enumerate(kernel.notebook()["cells"]):
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            if cell["cell_type"] != "code" or "NBVAL_SKIP" in source:
                continue
            started = time.monotonic()
            outputs, error = kernel.execute(source)
            ran = Cell(index, source, outputs, error, time.monotonic() - started)
            cells.append(ran)
            if error is None and "NBVAL_CHECK_OUTPUT" in source and _text(outputs) != _text(cell["outputs"]):
                ran.error = f"printed {_text(outputs)!r}, the notebook says {_text(cell['outputs'])!r}"
            if ran.error:
                raise NotebookFailed(f"{path}, cell {index} ({source.splitlines()[0][:60]!r}): {ran.error}")
    return cells


@contextlib.contextmanager
def jupyterlab(root_dir: Path, env: dict[str, str], log: Path, preexec_fn: Callable[[], None] | None = None,
               timeout: float = 60) -> Iterator[tuple[subprocess.Popen, str, str]]:
    """JupyterLab's server on a free loopback port, as `jupyter lab` starts it on Binder: (process, url, token).

    `preexec_fn` runs in the child before the server does (e.g. `Cgroup.join`). Stopped with SIGTERM on exit,
    which shuts its kernels down."""
    from flashsale.stack.processes import free_port

    port, token = free_port(), secrets.token_hex(16)
    argv = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}"]
    if os.geteuid() == 0:
        argv.append("--allow-root")  # the server refuses root without it (as Binder's never is)
    with open(log, "ab") as out:
        server = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  preexec_fn=preexec_fn)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "api/status", headers={"Authorization": f"token {token}"}, timeout=5).is_success:
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not answer within {timeout} s: see {log}")
            time.sleep(0.3)
        yield server, url, token
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    base, token, notebook = sys.argv[1:4]
    for ran in run_notebook(base, token, notebook):
        print(f"cell {ran.index:3d}  {ran.seconds:6.1f} s  {ran.source.splitlines()[0][:70]}")

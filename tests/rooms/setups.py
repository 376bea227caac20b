"""A hosted lab's setup steps, run on this machine in a fresh venv: what Codespaces or Binder would run in their image.

We have no Docker, so not their images: a fresh venv of this Python, an empty cache for Kafka's jars, and the
repository's own folder as the working directory (where both run their steps). Then `flashsale doctor --json`
in that venv says whether the lab would work there.
"""
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def fresh_venv(where: Path) -> dict[str, str]:
    """A new venv (pip only) and the environment that has it first on PATH, with an empty cache for Kafka's jars.
    pip keeps its own cache (PIP_CACHE_DIR as it was): the setup's downloads are not what is under test."""
    venv.create(where / "venv", with_pip=True, upgrade_deps=True)  # a current pip, as both images have
    pip_cache = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True)
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update(PATH=f"{where / 'venv' / 'bin'}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(where / "venv"),
               XDG_CACHE_HOME=str(where / "cache"), PIP_CACHE_DIR=pip_cache.stdout.strip() or str(where / "pip"),
               FLASHSALE_HOME=str(where / "home"))
    env.pop("FLASHSALE_KAFKA_HOME", None)  # the setup must install the jars, not find ours
    return env


def run_step(command: str, env: dict[str, str], timeout: float = 1200) -> subprocess.CompletedProcess:
    """One setup command, through bash as both services run them, in the repository's folder; it must succeed."""
    step = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    output = f"{step.stdout[-3000:]}\n{step.stderr[-3000:]}"
    assert step.returncode == 0, f"`{command}` failed ({step.returncode}):\n{output}"
    return step


def doctor(env: dict[str, str]) -> dict:
    """`flashsale doctor --json` on Apache Kafka (so it checks Java and the jars too), from the fresh venv: nothing
    blocks the lab, and the Kafka jars the setup installed are found."""
    import pytest
    if subprocess.run(["flashsale", "doctor", "--help"], env=env, capture_output=True).returncode != 0:
        pytest.skip("this kit has no `flashsale doctor` yet (issue 22, point 1: branch doctor)")
    run = subprocess.run(["flashsale", "doctor", "--json"], cwd=ROOT, env={**env, "FLASHSALE_BROKER": "kafka"},
                         capture_output=True, text=True, timeout=300)
    assert run.stdout.strip(), f"flashsale doctor printed nothing ({run.returncode}): {run.stderr[-2000:]}"
    report = json.loads(run.stdout)
    failed = [check for check in report["checks"] if not check["ok"]]
    assert report["ok"] and run.returncode == 0, f"doctor found what blocks the lab: {failed}"
    assert all(check["name"] and check["detail"] is not None for check in report["checks"])
    jars = [check for check in report["checks"] if "kafka" in check["name"].lower() and "jars" in check["name"]]
    assert jars and all(check["ok"] for check in jars), f"doctor does not find the jars the setup installed: {jars}"
    return report


def installed_from(env: dict[str, str]) -> Path:
    """Where the fresh venv's `flashsale` package is imported from: this checkout, for an editable install."""
    run = subprocess.run(["python", "-c", "import flashsale; print(flashsale.__file__)"], env=env,
                         capture_output=True, text=True, check=True)
    return Path(run.stdout.strip()).parent

"""Binder: repo2docker (the tool Binder builds images with) reads `binder/`, and the steps it would run work.

What is shown here: repo2docker itself, with `--no-build`, writes the Dockerfile Binder would build from this
repository (it needs no Docker for that), and the file asks for Python 3.11, Java 17 from apt, the kit installed
from the repository after it is copied in, and `binder/postBuild`; then the Dockerfile's own pip and postBuild
steps run in a fresh venv in the repository's folder, and `flashsale doctor` passes there. What is not: the image
build (apt, conda; no Docker here), mybinder.org itself, and its ~2 GB session, which test_memory_cap.py stands in for.
"""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from setups import ROOT, doctor, fresh_venv, installed_from, run_step

from flashsale.stack import kafka_dist

BINDER_URL = re.compile(r"https://mybinder\.org/v2/gh/([\w.-]+/[\w.-]+)/HEAD\?urlpath=lab/tree/([\w./-]+\.ipynb)")


def dockerfile() -> str:
    repo2docker = Path(sys.executable).with_name("repo2docker")
    assert repo2docker.exists() or shutil.which("repo2docker"), "repo2docker is in the [test] extra"
    run = subprocess.run([str(repo2docker) if repo2docker.exists() else "repo2docker", "--no-build", "--no-run",
                          "--debug", str(ROOT)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


@pytest.fixture(scope="module")
def built() -> str:
    return dockerfile()


@pytest.mark.broker_free
def test_repo2docker_builds_python_3_11_with_java_17_from_apt_and_the_kit_from_the_repository(built: str):
    # the conda lock file of the image's Python (its build-context name escaped: '.' is -2e, '-' is -2d)
    lock = "environment.py-3.11-linux-64.lock"
    escaped = lock.replace("-", "-2d").replace(".", "-2e")
    assert lock in built or escaped in built, "binder/runtime.txt asks for Python 3.11 (repo2docker's default: 3.10)"
    apt = next(line for line in built.splitlines() if "apt-get install --yes" in line)
    assert "openjdk-17-jre-headless" in apt.split() and "maven" in apt.split()
    copied = built.index("COPY --chown=0:0 src/ ${REPO_DIR}/")
    pip = built.index('pip install --no-cache-dir -r "binder/requirements.txt"')
    assert copied < pip, "the kit is installed from the repository (-e .), so after the repository is copied in"
    assert pip < built.index("RUN ./binder/postBuild"), "postBuild runs once the kit is installed"


@pytest.mark.broker_free
def test_the_readme_opens_binder_and_codespaces_on_one_repository_and_binder_on_the_setup_notebook():
    readme = (ROOT / "README.md").read_text()
    binder = BINDER_URL.search(readme)
    assert binder, "a Binder badge whose link opens JupyterLab on a notebook"
    repository, notebook = binder.groups()
    assert notebook == "notebooks/00-setup.ipynb" and (ROOT / notebook).exists()
    assert f"https://codespaces.new/{repository}" in readme, "the Codespaces badge names the same repository"
    assert "https://mybinder.org/badge_logo.svg" in readme and "https://github.com/codespaces/badge.svg" in readme


@pytest.mark.broker_free
@pytest.mark.timeout(1800)  # pip install -e . took 50 s on a quiet machine, over 8 min at a load of 25
def test_binders_own_install_and_postbuild_steps_in_a_fresh_venv_leave_a_machine_that_doctor_passes(
        built: str, tmp_path: Path):
    env = fresh_venv(tmp_path)
    ours = [line.removeprefix("RUN ").strip() for line in built.splitlines()
            if line.startswith("RUN ") and "binder/" in line and "chmod" not in line]
    assert len(ours) == 2, ours  # pip install -r binder/requirements.txt, then ./binder/postBuild
    for step in ours:
        # the image's Python is the venv's here; pip may keep its cache (the download is not under test)
        run_step(step.replace("${KERNEL_PYTHON_PREFIX}", env["VIRTUAL_ENV"]).replace(" --no-cache-dir", ""), env)
    assert installed_from(env) == ROOT / "flashsale"
    jars = tmp_path / "cache" / "flashsale" / f"kafka-{kafka_dist.KAFKA_VERSION}" / "libs"
    assert any(jars.glob("kafka_2.13-*.jar")), f"postBuild put no Kafka jars in {jars}"
    doctor(env)

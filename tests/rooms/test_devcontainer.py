"""Codespaces and VS Code: `.devcontainer/devcontainer.json` asks for what the lab needs, and its setup works.

What is shown here: the file's Python, Java, ports and host requirements, and its `postCreateCommand` run in a
fresh venv in this repository's folder, after which `flashsale doctor` finds nothing that blocks the lab (Apache
Kafka's jars included). What is not: the devcontainer image itself (no Docker here) and GitHub's Codespaces.
"""
import json
from pathlib import Path

import pytest
from setups import ROOT, doctor, fresh_venv, installed_from, run_step

from flashsale.stack import kafka_dist

CONFIG = ROOT / ".devcontainer" / "devcontainer.json"


def config() -> dict:
    return json.loads(CONFIG.read_text())  # plain JSON, no comments: this test and every tool can read it


@pytest.mark.broker_free
def test_the_devcontainer_asks_for_python_3_11_java_17_two_cores_and_4_gb():
    devcontainer = config()
    assert devcontainer["image"].startswith("mcr.microsoft.com/devcontainers/python:")
    assert "3.11" in devcontainer["image"].rsplit(":", 1)[1], "the image's tag names its Python"
    java = devcontainer["features"]["ghcr.io/devcontainers/features/java:1"]
    assert java["version"] == "17" and java["installMaven"] is True  # Maven: the jars come as CI gets them
    assert devcontainer["hostRequirements"] == {"cpus": 2, "memory": "4gb"}


@pytest.mark.broker_free
def test_the_devcontainer_forwards_the_gateway_and_jupyterlab_with_labels():
    devcontainer = config()
    assert {8000, 8888} <= set(devcontainer["forwardPorts"])
    for port in ("8000", "8888"):
        assert devcontainer["portsAttributes"][port]["label"].strip()
    assert (ROOT / devcontainer["customizations"]["codespaces"]["openFiles"][0]).exists()


@pytest.mark.broker_free
@pytest.mark.timeout(1800)  # pip install -e . took 50 s on a quiet machine, over 8 min at a load of 25
def test_the_devcontainers_setup_in_a_fresh_venv_leaves_a_machine_that_doctor_passes(tmp_path: Path):
    env = fresh_venv(tmp_path)
    for command in config()["postCreateCommand"].split("&&"):  # one step at a time, so a failure names its step
        run_step(command.strip(), env)
    assert installed_from(env) == ROOT / "flashsale", "the setup installed the kit from somewhere else"
    jars = tmp_path / "cache" / "flashsale" / f"kafka-{kafka_dist.KAFKA_VERSION}" / "libs"
    assert any(jars.glob("kafka_2.13-*.jar")), f"the setup put no Kafka jars in {jars}"
    doctor(env)

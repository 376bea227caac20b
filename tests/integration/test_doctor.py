"""`flashsale doctor` on this machine, for real: a port held by another process is named and blocks the lab, and
`--start` brings a throw-away stack up and leaves nothing behind. The same on either broker: CI's tansu pass runs it."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from flashsale.stack.processes import free_ports

pytestmark = pytest.mark.broker_free


def doctor(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flashsale.cli", "doctor", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=400)


def lab_env(tmp_path: Path) -> dict[str, str]:
    gateway, shop, psp = free_ports(3)
    return {"FLASHSALE_HOME": str(tmp_path / "home"), "FLASHSALE_GATEWAY_PORT": str(gateway),
            "FLASHSALE_SHOP_PORT": str(shop), "FLASHSALE_PSP_PORT": str(psp), "TMPDIR": str(tmp_path)}


def test_a_port_held_by_another_process_is_named_and_blocks_the_lab(tmp_path):
    env = lab_env(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["FLASHSALE_SHOP_PORT"])))
        squatter.listen()
        done = doctor("--json", env=env)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    port = next(check for check in report["checks"] if check["name"] == f"port {env['FLASHSALE_SHOP_PORT']} free")
    assert report["ok"] is False and port["ok"] is False
    assert f"pid {os.getpid()}" in port["detail"] and f"kill {os.getpid()}" in port["fix"]


def test_start_brings_a_stack_up_measures_it_and_leaves_nothing_running(tmp_path):
    """CI's machine has all the lab needs, so every check passes there (Chromium and Kafka's jars included)."""
    done = doctor("--json", "--start", env=lab_env(tmp_path))
    report = json.loads(done.stdout)
    failures = [check for check in report["checks"] if not check["ok"]]
    assert done.returncode == 0 and report["ok"] is True and failures == [], failures
    started = report["checks"][-1]
    assert started["name"] == "a stack starts" and "healthy in" in started["detail"] and "MiB (USS" in started["detail"]
    print(started["detail"])
    left = [p.info for p in psutil.process_iter(["pid", "cmdline"])
            if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert left == [], left  # the stack's home was under tmp_path (TMPDIR): no process names it any more
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith("flashsale-doctor-")] == []

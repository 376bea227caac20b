"""The `flashsale` command as a user meets it, against the session's stack and against stacks of its own."""
import json
import os
import signal
import socket
import subprocess
import sys

import psutil
import pytest

from flashsale.settings import Settings
from flashsale.stack.control import Stack
from flashsale.stack.processes import free_port


def flashsale(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLASHSALE_HOME": str(settings.home), "FLASHSALE_GATEWAY_PORT": str(settings.gateway_port),
           "FLASHSALE_SHOP_PORT": str(settings.shop_port)}
    return subprocess.run([sys.executable, "-m", "flashsale.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def pids(status: dict) -> dict:
    return {name: info["pid"] for group in ("infra", "services") for name, info in status[group].items()}


def test_status_json_follows_the_contract(stack):
    done = flashsale(stack.settings, "status", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert set(status["infra"]) == {"kafka", "postgres", "redis"}
    assert {"gateway", "orders", "inventory", "notifications", "shop"} <= set(status["services"])
    for component in [*status["infra"].values(), *status["services"].values()]:
        assert isinstance(component["pid"], int) and isinstance(component["url"], str)
        assert component["healthy"] is True
    assert {"productId", "initialStock", "availableStock", "confirmed", "cancelled", "pending"} <= set(status["sale"])


def test_up_again_changes_nothing_and_restarts_only_what_is_missing(stack):
    before = pids(stack.status())
    assert flashsale(stack.settings, "up").returncode == 0
    assert pids(stack.status()) == before

    done = flashsale(stack.settings, "kill", "notifications")
    assert done.returncode == 0, done.stderr
    assert flashsale(stack.settings, "up").returncode == 0
    after = pids(stack.status())
    assert after["notifications"] != before["notifications"] and after["notifications"] is not None
    assert {k: v for k, v in after.items() if k != "notifications"} == \
           {k: v for k, v in before.items() if k != "notifications"}


def test_reset_and_logs(stack):
    done = flashsale(stack.settings, "reset", "--stock", "7")
    assert done.returncode == 0 and "7 x iPhone 15 Pro Max" in done.stdout, done.stdout + done.stderr
    assert stack.status()["sale"]["availableStock"] == 7
    logs = flashsale(stack.settings, "logs", "orders")
    assert logs.returncode == 0 and "consuming ['order.events', 'inventory.events'] as orders" in logs.stdout
    assert flashsale(stack.settings, "logs", "nosuch").returncode == 1


def test_unknown_service_is_a_clear_error(stack):
    done = flashsale(stack.settings, "kill", "nosuch")
    assert done.returncode == 1 and "Unknown component 'nosuch'" in done.stderr


def test_status_when_the_stack_is_not_up(tmp_path):
    settings = Settings(home=tmp_path, gateway_port=free_port(), shop_port=free_port())
    done = flashsale(settings, "status")
    assert done.returncode == 0 and "the stack is not up" in done.stderr


def test_a_taken_port_is_named_before_anything_starts(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        settings = Settings(home=tmp_path, gateway_port=port, shop_port=free_port())
        done = flashsale(settings, "up")
    assert done.returncode == 1
    assert f"Port {port} for gateway is taken" in done.stderr
    assert not (tmp_path / "stack.json").exists() or not json.loads((tmp_path / "stack.json").read_text())["processes"]


def test_a_server_that_fails_to_start_shows_its_log(tmp_path):
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "PG_VERSION").write_text("9\n")  # a data directory PostgreSQL 18 will refuse
    settings = Settings(home=tmp_path, gateway_port=free_port(), shop_port=free_port())
    try:
        done = flashsale(settings, "up")
        assert done.returncode == 1
        assert "postgres did not start" in done.stderr and "last lines of" in done.stderr
    finally:
        Stack(settings).down()


def test_down_leaves_no_process_behind(tmp_path):
    settings = Settings(home=tmp_path, gateway_port=free_port(), shop_port=free_port())
    stack = Stack(settings)
    status = stack.up()
    started = [pid for pid in pids(status).values() if pid]
    family = {p.pid for pid in started for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]}
    assert len(started) == 8

    assert flashsale(settings, "down").returncode == 0
    survivors = [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert survivors == []

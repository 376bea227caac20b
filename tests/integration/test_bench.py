"""`flashsale bench` end to end, small: every phase runs and the last line is the contract's JSON."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from flashsale.brokers import choose
from flashsale.settings import Settings
from flashsale.stack.control import Stack

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None,
                                reason="needs wrk (apt-get install wrk); .ci/run installs it")


# 25 connections: the shop's pool has 4, and a naive checkout queues for one twice (before and after paying).
# With 100, on a busy CI machine every naive answer took longer than the 2 s run: none came back (0 per second).
@pytest.fixture(scope="module")
def small_bench(tmp_path_factory) -> tuple[dict, str]:
    tmp_path = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "FLASHSALE_HOME": str(tmp_path / "home")}
    try:
        done = subprocess.run([sys.executable, "-m", "flashsale.cli", "bench", "--seconds", "2", "--connections",
                               "25", "--browsers", "100", "--rate", "200", "--warm-up", "2", "--idle", "2",
                               "--json", str(tmp_path / "bench.json")],
                              env=env, capture_output=True, text=True, timeout=540)
    finally:  # a bench killed by the timeout never reached its own `down`: its stack would outlive the test
        Stack(Settings(home=tmp_path / "home" / "bench")).down()
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == json.loads((tmp_path / "bench.json").read_text())
    return result, done.stdout


@pytest.mark.timeout(600)
def test_a_small_bench_measures_every_system_and_loses_nothing(small_bench):
    result, printed = small_bench
    assert set(result["accept_per_s"]) == {"ceiling", "event_driven", "locked", "naive"}
    assert all(rate > 0 for rate in result["accept_per_s"].values()), result["accept_per_s"]
    assert result["ratio_event_vs_locked"] == round(result["accept_per_s"]["event_driven"]
                                                    / result["accept_per_s"]["locked"], 2)
    assert result["p99_accept_ms"] > 0 and result["p99_e2e_ms"] > 0 and result["settle_per_s"] > 0
    assert result["oversold"] == 0 and result["lost"] == 0
    fanout = result["fanout"]
    assert fanout["clients"] == 100
    assert fanout["order_update"]["received"] == fanout["published"]["order_update"] > 0, fanout
    assert fanout["stock_update"]["received"] > 0 and result["p99_fanout_ms"] > 0
    assert "WebSocket fan-out to 100 browsers" in printed


def test_the_bench_says_its_buyers_were_distinct_what_the_idle_stack_costs_and_how_it_wakes(small_bench):
    result, printed = small_bench
    assert result["per_user_limit_cancelled"] == 0 and result["buyers_distinct"] is True
    assert 0 < result["idle_cpu_pct"] == sum(result["idle_cpu_pct_by_component"].values()) or \
        abs(result["idle_cpu_pct"] - sum(result["idle_cpu_pct_by_component"].values())) < 0.1
    assert {"gateway", "orders", "inventory", "postgres"} <= set(result["idle_cpu_pct_by_component"])
    assert result["stack_uss_mib"] > 50
    assert "idle stack:" in printed and "buyers distinct: True" in printed
    assert result["first_order_after_idle_ms"] is not None, "the order placed after the idle time never came back"


def test_the_latency_goals_are_measured_at_the_offered_rate_on_the_broker_that_ran(small_bench):
    result, _ = small_bench
    assert result["broker"] == Settings().broker and result["e2e_rate_per_s"] == 200 and result["e2e_settled"]
    assert result["broker_mode"] == choose(Settings()).name  # "tansu-s3", the default: its storage too
    assert result["warm_up_s"] == 2  # the orders of the warm-up were settled and are not among those measured
    assert result["fanout_warm_up_s"] == (4 if Settings().broker == "kafka" else 1)  # a JVM warms up with the load
    assert result["p99_e2e_ms_at_200"] == result["p99_e2e_ms"] > 0
    assert result["p99_fanout_ms_at_100"] == result["p99_fanout_ms"] > 0  # named by its 100 browsers
    (run,) = result["runs"]  # one run: the goal's figure is the worse of the fan-out's two kinds, each kept
    assert run["p99_fanout_ms_by_kind"] == {kind: result["fanout"][kind]["p99_ms"]
                                            for kind in ("order_update", "stock_update")}
    assert max(run["p99_fanout_ms_by_kind"].values()) == result["p99_fanout_ms_at_100"]


def test_cpu_per_order_counts_every_component_of_the_event_path_and_not_the_shop(small_bench):
    result, printed = small_bench
    cpu = result["cpu_ms_per_order_by_component"]
    assert {"gateway", "inventory", "orders", "payments", "notifications", "psp", "kafka", "postgres",
            "redis"} <= set(cpu) and "shop" not in cpu, cpu
    assert all(ms >= 0 for ms in cpu.values()) and cpu["gateway"] > 0 and cpu["kafka"] > 0, cpu
    assert cpu["total"] == result["cpu_ms_per_order"]
    assert abs(sum(ms for name, ms in cpu.items() if name != "total") - cpu["total"]) < 0.01 * len(cpu), cpu
    assert result["cpu_ms_per_noop"] > 0 and "CPU per order:" in printed

"""`flashsale bench` end to end, small: every phase runs and the last line is the contract's JSON."""
import json
import os
import shutil
import subprocess
import sys

import pytest


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt-get install wrk); .ci/run installs it")
@pytest.mark.timeout(600)
def test_a_small_bench_measures_every_system_and_loses_nothing(tmp_path):
    env = {**os.environ, "FLASHSALE_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "flashsale.cli", "bench", "--seconds", "2", "--connections", "100",
                           "--browsers", "100", "--json", str(tmp_path / "bench.json")],
                          env=env, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == json.loads((tmp_path / "bench.json").read_text())
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
    assert "WebSocket fan-out to 100 browsers" in done.stdout

"""The offline bundle, for real: `flashsale bundle` here (PyPI and Maven Central reachable), then, in a network
namespace with no network at all (`unshare --net`, only loopback up), a fresh venv installs the kit from it, runs
`flashsale demo` and brings Apache Kafka up from the bundle's jars. Once, in CI's tansu pass (it does not depend
on the suite's broker: it runs both)."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

# ~5 min when the machine is quiet; at a load of 20 the install alone took 40 min here
pytestmark = [pytest.mark.broker_free, pytest.mark.timeout(2700)]


def need_unshare() -> None:
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--net", "true"]).returncode:
        pytest.skip("needs `unshare --net` (root, util-linux): CI has both")


def test_a_bundle_installs_and_runs_the_demo_and_apache_kafka_with_no_network(tmp_path):
    need_unshare()
    bundle, venv, work = tmp_path / "bundle", tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    made = subprocess.run([sys.executable, "-m", "flashsale.cli", "bundle", str(bundle)], capture_output=True,
                          text=True, timeout=1200)
    assert made.returncode == 0, made.stdout + made.stderr
    assert (bundle / "INSTALL.md").exists() and any((bundle / "kafka").glob("kafka-tools-*.jar"))
    flashsale = venv / "bin" / "flashsale"
    script = textwrap.dedent(f"""\
        set -eux
        ip link set lo up
        if {sys.executable} -c "import socket; socket.create_connection(('pypi.org', 443), timeout=5)"; then
            echo "the namespace reaches the network" >&2; exit 3
        fi
        {sys.executable} -m venv {venv}
        {venv}/bin/pip install -q --no-index --find-links {bundle}/wheels flashsale
        trap '{flashsale} down' EXIT
        {flashsale} kafka install --from {bundle}
        {flashsale} demo
        {flashsale} down
        {flashsale} up --broker kafka
        {flashsale} kafka tool kafka-topics --list
        """)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FLASHSALE_", "PIP_", "VIRTUAL_ENV"))}
    env.update(FLASHSALE_HOME=str(work / "home"), XDG_CACHE_HOME=str(tmp_path / "cache"), PIP_NO_CACHE_DIR="1")
    done = subprocess.run(["unshare", "--net", "bash", "-c", script], cwd=work, env=env, capture_output=True,
                          text=True, timeout=1400)
    print(done.stderr[-3000:])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "the event-driven system sold exactly what it had" in done.stdout
    assert "order.events.dlq" in done.stdout.split("buyer page:")[-1]  # kafka-topics listed Apache Kafka's topics

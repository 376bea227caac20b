"""Kafka's own tools against the session's stack, on either broker (what tansu does and does not answer is in
the README, "Kafka's own tools and kcat")."""
import os
import subprocess
import sys
import zipfile

import pytest

from flashsale.events import TOPICS
from flashsale.harness.checks import settle
from flashsale.harness.load import run_buyers
from flashsale.stack import kafka_dist, kafka_tools
from flashsale.stack.processes import StackError


@pytest.fixture(scope="module")
def jars():
    try:
        return kafka_dist.jars()
    except StackError:
        pytest.skip("Kafka's jars are not installed: `flashsale kafka install` (CI runs it)")


@pytest.mark.broker_free
def test_every_tool_names_a_main_class_that_the_installed_jars_hold(jars):
    classes = {name for jar in jars.glob("*.jar") for name in zipfile.ZipFile(jar).namelist()}
    missing = {tool: t.main for tool, t in kafka_tools.TOOLS.items()
               if t.main.replace(".", "/") + ".class" not in classes}
    assert missing == {}


def test_the_command_lists_the_stacks_topics(stack, jars):
    done = subprocess.run([sys.executable, "-m", "flashsale.cli", "kafka", "tool", "kafka-topics", "--list"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "FLASHSALE_HOME": str(stack.home)})
    assert done.returncode == 0, done.stderr
    assert set(TOPICS) <= set(done.stdout.split())


def test_consumer_groups_shows_the_inventory_groups_committed_offsets(stack, wired, jars, fresh_sale):
    race = run_buyers("gateway", wired.gateway_url, buyers=20, progress=False)
    assert settle(wired, [b.order_id for b in race.accepted if b.order_id]) is not None  # inventory has committed
    # --timeout: the tool waits 5 s for the group's coordinator by default; a busy 2-core machine took longer
    said = kafka_tools.output("kafka-consumer-groups", "--describe", "--group", "inventory", "--timeout", "60000",
                              bootstrap=wired.kafka_bootstrap_servers)
    rows = [line.split() for line in said.splitlines() if line.startswith("inventory ")]
    assert {row[1] for row in rows} >= {"order.events"}, said
    if wired.consumer_groups:  # Apache Kafka: the service is a member, and says who it is
        assert all(row[-1] == "inventory-0" for row in rows), said
    else:  # tansu: the service owns its partitions by number, it never joined
        assert "has no active members" in said and all(row[-1] == "-" for row in rows), said


def test_the_console_consumer_reads_order_events_from_the_beginning(stack, wired, jars, fresh_sale):
    # 20 orders at least in the log, so that 20 messages come at once. Not 1: the log may begin with the bytes of
    # test_bad_input's poison message (CI read b'\xff\xfepoison-...' first), printed as they are.
    run_buyers("gateway", wired.gateway_url, buyers=20, progress=False)
    said = kafka_tools.output("kafka-console-consumer", "--topic", "order.events", "--from-beginning",
                              "--max-messages", "20", "--timeout-ms", "120000", bootstrap=wired.kafka_bootstrap_servers,
                              timeout=240)
    assert '"type":"order.' in said, said


"""Three Apache Kafka nodes (`flashsale up --broker kafka --kafka-nodes 3`): a leader killed mid-sale, two nodes down.

Every partition has three replicas and `min.insync.replicas=2`, and every producer of the kit writes with
acks=all. So a write acknowledged before the kill is on at least two nodes, and survives the leader's death:
the clients find the new leader in the metadata and go on. With two nodes down no write can be acknowledged,
and the gateway must answer 503, never 202, until a node is back.
"""
import random
import time

import pytest

from flashsale import events as ev
from flashsale.harness.checks import settle, unsettled
from flashsale.lab.replicas import in_sync, leader
from flashsale.settings import Settings

from .buyers import SteadyBuyers
from .conftest import SEED, TALLY, checked, new_stack, wait_for

pytestmark = pytest.mark.skipif(Settings().broker != "kafka", reason="replication is Apache Kafka's (three nodes)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    stack = new_stack(tmp_path_factory.mktemp("cluster"), broker="kafka", kafka_nodes=3, kafka_heap_mb=256)
    try:
        stack.up(timeout=300)
        yield stack
    finally:
        stack.down()


def every_replica_in_sync(cluster) -> None:
    """A fault starts from a healthy cluster, not from the last test's: a node restarted at its end may still be
    catching up. In CI on 2026-12-02, kafka-1 was restarted 0.2 s before this module killed the two other nodes;
    it was in no partition's ISR yet, so with kafka-2 back no write could be acknowledged for the 6 s of buyers."""
    for topic in ev.TOPICS:
        in_sync(cluster, topic, timeout=120)


def test_status_lists_three_healthy_nodes(cluster):
    nodes = cluster.status()["infra"]["kafka"]["nodes"]
    assert [n["id"] for n in nodes] == [1, 2, 3] and all(n["healthy"] and n["pid"] for n in nodes), nodes
    assert len(cluster.wired().kafka_bootstrap_servers.split(",")) == 3


# order.events: the gateway's producer writes to it; inventory.events: the consumers' producers do.
@pytest.mark.parametrize("topic", [ev.ORDER_EVENTS, ev.INVENTORY_EVENTS])
def test_the_leader_of_a_busy_partition_killed_mid_sale_loses_no_accepted_order(cluster, topic):
    rng = random.Random(f"{SEED}-leader-{topic}")
    every_replica_in_sync(cluster)
    wired = cluster.wired()
    sale = cluster.reset(stock=400, per_user_limit=1)
    buyers = SteadyBuyers(wired.gateway_url, sale.productId, buyers=600, rate=60, prefix=f"leader-{topic}").start()
    assert wait_for(lambda: len(buyers.accepted) >= rng.randint(50, 150), timeout=60), buyers.statuses()

    victim = leader(cluster, topic)
    assert buyers.arriving, "the sale was over before the kill"
    assert cluster.kill(victim), f"no {victim} to kill"
    TALLY.injections["kafka node (leader)"] += 1
    assert wait_for(lambda: leader(cluster, topic) != victim, timeout=30), "no new leader was elected"
    time.sleep(rng.uniform(1, 3))
    cluster.restart(victim)
    buyers.join()

    assert set(buyers.statuses()) <= {202, 409, 503}, buyers.statuses()
    assert settle(wired, buyers.accepted, timeout=120) is not None, \
        f"{unsettled(wired, buyers.accepted)} of {len(buyers.accepted)} accepted orders never settled"
    state = checked(cluster, sale.saleId, buyers.accepted)
    assert state.ok and state.lost == 0 and state.oversold == 0, state.as_dict()


def test_with_two_nodes_down_the_gateway_answers_503_never_202_and_orders_flow_once_one_is_back(cluster):
    every_replica_in_sync(cluster)
    wired = cluster.wired()
    sale = cluster.reset(stock=100, per_user_limit=1)
    down = ["kafka-2", "kafka-3"]
    for node in down:
        cluster.kill(node)
    TALLY.injections["kafka nodes (two of three)"] += 1
    refused = SteadyBuyers(wired.gateway_url, sale.productId, buyers=20, rate=10, prefix="two-down").start()
    refused.join()
    assert refused.statuses()[202] == 0, f"a 202 with two nodes of three down: {refused.statuses()}"
    assert set(refused.statuses()) == {503}, refused.statuses()

    cluster.restart("kafka-2")
    later = SteadyBuyers(wired.gateway_url, sale.productId, buyers=60, rate=10, prefix="one-back").start()
    later.join()
    cluster.restart("kafka-3")
    assert later.statuses()[202] > 0, f"no order accepted with two nodes of three up: {later.statuses()}"
    assert settle(wired, later.accepted, timeout=120) is not None, \
        f"{unsettled(wired, later.accepted)} of {len(later.accepted)} accepted orders never settled"
    state = checked(cluster, sale.saleId, later.accepted)
    assert state.ok and state.lost == 0, state.as_dict()

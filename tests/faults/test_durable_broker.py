"""The durable embedded broker: tansu on S3 storage served by SeaweedFS (`flashsale up --durable`), or
Apache Kafka (`--broker kafka`), whose log is on disk anyway.

kill -9 the broker while buyers are being accepted, restart it: every order that got a 202 settles.
With tansu's memory storage the same kill loses whatever the broker held (see test_infra_restarts.py).
"""
import random
import time

import pytest

from flashsale.harness.checks import settle, unsettled
from flashsale.settings import Settings
from flashsale.stack.control import Stack

from .buyers import SteadyBuyers
from .conftest import SEED, TALLY, checked, new_stack, wait_for


@pytest.fixture(scope="module")
def durable_stack(tmp_path_factory):
    stack = new_stack(tmp_path_factory.mktemp("durable"), durable=True)
    try:
        stack.up(timeout=120)
        yield stack
    finally:
        stack.down()


on_s3 = pytest.mark.skipif(Settings().broker != "tansu",
                           reason="S3 storage is tansu's; Apache Kafka keeps its log on disk")


@on_s3
def test_status_names_the_s3_server_under_the_durable_broker(durable_stack):
    weed = durable_stack.status()["infra"]["seaweedfs"]
    assert isinstance(weed["pid"], int) and weed["url"].startswith("http://") and weed["healthy"] is True


@pytest.mark.parametrize("round", range(3))
def test_kill_9_of_the_durable_broker_mid_sale_loses_no_accepted_order(durable_stack, round):
    rng = random.Random(f"{SEED}-durable-{round}")
    wired = durable_stack.wired()
    sale = durable_stack.reset(stock=500, per_user_limit=1)  # sold out only near the end
    buyers = SteadyBuyers(wired.gateway_url, sale.productId, buyers=600, rate=150, prefix=f"durable{round}").start()
    assert wait_for(lambda: len(buyers.accepted) >= rng.randint(50, 200), timeout=60), buyers.statuses()

    assert buyers.arriving, "the sale was over before the kill"
    assert durable_stack.kill("kafka"), "no broker to kill"
    TALLY.injections[f"{durable_stack.settings.broker} (durable)"] += 1
    time.sleep(rng.uniform(0.2, 1.5))  # the outage: the gateway holds or refuses what arrives meanwhile
    durable_stack.restart("kafka")  # tansu is back in a second; Apache Kafka's JVM takes longer than the sale
    buyers.join()
    later = SteadyBuyers(wired.gateway_url, sale.productId, buyers=60, rate=30, prefix=f"durable{round}-later").start()
    later.join()
    accepted = buyers.accepted + later.accepted

    assert set(buyers.statuses()) <= {202, 409, 503}, buyers.statuses()  # 503 only while the broker is away
    assert later.statuses()[202] > 0, f"no order accepted after the restart: {later.statuses()}"
    assert settle(wired, accepted, timeout=90) is not None, \
        f"{unsettled(wired, accepted)} of {len(accepted)} accepted orders never settled"
    state = checked(durable_stack, sale.saleId, accepted)
    assert state.ok and state.lost == 0, state.as_dict()
    assert state.confirmed == min(500, state.confirmed + state.cancelled), state.as_dict()


@on_s3
def test_later_commands_keep_the_broker_durable(durable_stack):
    later = Stack(Settings(home=durable_stack.home))  # what `flashsale restart kafka` builds, without --durable
    assert later.settings.durable and later.profile.name == "tansu-s3"

"""What `flashsale up --fast` gives up, shown: tansu in memory loses the accepted orders it held when it dies.

The same fault as test_durable_broker.py (the order service frozen, the broker killed with kill -9 mid-sale), on
a stack of its own in the fast mode: the orders accepted while the order service was frozen were only in the
broker's memory, and they never settle. Never an oversell, never a user over the limit: what is lost is lost
whole. The kill loses them every time, so the test can say so exactly.
"""
import pytest

from flashsale.harness.checks import invariants

from .buyers import SteadyBuyers
from .conftest import TALLY, new_stack, wait_for


@pytest.fixture(scope="module")
def fast_stack(tmp_path_factory):
    stack = new_stack(tmp_path_factory.mktemp("fast"), broker="tansu", durable=False)
    try:
        stack.up(timeout=120)
        yield stack
    finally:
        stack.down()


@pytest.mark.broker_free  # it names its broker, memory tansu, whichever the pass
def test_kill_9_of_the_fast_broker_with_orders_frozen_loses_the_orders_it_held(fast_stack):
    assert fast_stack.profile.name == "tansu" and not fast_stack.profile.durable
    wired = fast_stack.wired()
    sale = fast_stack.reset(stock=500, per_user_limit=1)
    buyers = SteadyBuyers(wired.gateway_url, sale.productId, buyers=450, rate=150, prefix="fast").start()
    assert wait_for(lambda: len(buyers.accepted) >= 30, timeout=60), buyers.statuses()
    with fast_stack.frozen("orders"):  # what is accepted from now on is only in the broker's memory
        held = set(buyers.accepted)
        assert wait_for(lambda: len(buyers.accepted) >= len(held) + 20, timeout=30), buyers.statuses()
        assert fast_stack.kill("kafka")
        in_the_log = set(buyers.accepted) - held
    TALLY.injections["tansu (--fast, orders frozen)"] += 1
    fast_stack.restart("kafka")  # memory storage comes back empty; every client is started again
    buyers.stop()
    buyers.join()

    state = invariants(wired, sale.saleId, buyers.accepted)
    TALLY.lost_by_design += state.lost
    assert state.lost >= len(in_the_log) >= 20, (len(in_the_log), state.as_dict())
    assert state.oversold == 0 and state.overLimitUsers == 0, state.as_dict()

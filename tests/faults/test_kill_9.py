"""kill -9 of orders, inventory, payments, notifications, the gateway and the payment provider at random
moments of sales.

Eight sales of up to 300-1,000 buyers who arrive steadily. In each, at random moments while buyers
arrive, one service and then two at once are killed with SIGKILL, and `up()` starts what is
missing each time; the restarted consumers resume from their committed offsets, and payments charges
again with the same keys. Then every order that got a 202 settles, and the contract's invariants hold,
every sale paid exactly once among them. FLASHSALE_FAULT_SEED replays a run.
"""
import random
import time

import pytest

from flashsale.harness.checks import settle, unsettled

from .buyers import SteadyBuyers
from .conftest import SEED, TALLY, checked

SALES = 8
VICTIMS = ("orders", "inventory", "payments", "notifications", "gateway", "psp")
STOCK = 100


@pytest.mark.parametrize("index", range(SALES))
def test_kill_9_at_random_moments_of_a_sale_loses_and_oversells_nothing(fault_stack, index):
    rng = random.Random(f"{SEED}-kill-{index}")
    crashes = [rng.sample(VICTIMS, 1), rng.sample(VICTIMS, 2)]  # one service, then two at once
    rng.shuffle(crashes)
    sale, wired = fault_stack.reset(stock=STOCK, per_user_limit=1), fault_stack.wired()
    count = rng.randint(300, 1000)
    # Buyers keep arriving for up to 20 s, long enough for both crashes and restarts on a busy machine; the sale
    # stops half a second after the last restart.
    buyers = SteadyBuyers(wired.gateway_url, sale.productId, count, rate=count / 20, prefix=f"kill{index}").start()
    try:
        for victims in crashes:
            time.sleep(rng.uniform(0.3, 2.0))  # the random moment: after the start, or while restarted ones catch up
            assert buyers.arriving, f"the sale was over before the kill of {victims}"
            for victim in victims:
                assert fault_stack.kill(victim), f"no {victim} to kill"
                TALLY.injections[victim] += 1
            fault_stack.up()  # starts only what is missing
        time.sleep(0.5)  # a few buyers more, served by the restarted services
    finally:
        buyers.stop()
        buyers.join()

    # 0: the gateway was down (refused or cut off); never a 5xx.
    assert set(buyers.statuses()) <= {202, 409, 0}, buyers.statuses()
    assert buyers.accepted, buyers.statuses()
    assert settle(wired, buyers.accepted, timeout=90) is not None, \
        f"{unsettled(wired, buyers.accepted)} of {len(buyers.accepted)} accepted orders never settled"
    state = checked(fault_stack, sale.saleId, buyers.accepted)
    assert state.ok, state.as_dict()
    assert state.confirmed == min(STOCK, state.confirmed + state.cancelled), state.as_dict()  # first come, first served

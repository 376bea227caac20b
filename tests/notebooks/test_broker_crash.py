"""What the lessons say survives a broker crash does, in a notebook's own stack: no accepted order is lost.

The stack starts as a notebook starts it: `lab.start(name)` with FLASHSALE_HOME set and no broker named, so it
runs the default mode (tansu on S3 storage), or the broker of the suite's pass (FLASHSALE_BROKER=kafka). The
order service is frozen while 200 buyers are accepted, so all 200 orders are in the broker's log and nowhere
else when the broker is killed with kill -9; once both are back, every one of them settles. With `--fast`
(memory tansu) all 200 would be gone: tests/faults/test_fast_broker.py shows that mode losing them.
"""
from collections import Counter

import pytest
from lab_processes import clean_up, survivors

from flashsale import lab


@pytest.mark.timeout(600)
def test_a_notebooks_own_stack_loses_no_accepted_order_when_its_broker_is_killed(tmp_path, monkeypatch):
    monkeypatch.setenv("FLASHSALE_HOME", str(tmp_path))
    monkeypatch.delenv("FLASHSALE_DURABLE", raising=False)  # the notebook names no mode: the default
    home = tmp_path / "04-failure-and-recovery"
    try:
        stack = lab.start("04-failure-and-recovery", timeout=180)
        assert stack.profile.durable, f"a notebook's default stack runs {stack.profile.name}, which forgets"
        stack.reset(stock=100)
        with stack.frozen("orders"):  # nothing leaves the log while the buyers are accepted
            race = lab.buyers(stack, "gateway", 200, progress=False)
            assert len(race.order_ids) == 200, Counter(buyer.status for buyer in race.buyers)
            assert stack.kill("kafka"), "no broker to kill"
        stack.restart("kafka", timeout=180)
        state = lab.check(stack, race, timeout=180)

        assert state.lost == 0, f"{state.lost} of 200 accepted orders lost with the broker: {state.as_dict()}"
        assert state.ok and state.confirmedUnits == 100 and state.oversold == 0, state.as_dict()
        lab.stop(stack)
        assert survivors(home) == [], "the notebook's stack left processes running"
    finally:
        clean_up(home)

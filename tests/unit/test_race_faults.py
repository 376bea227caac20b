"""A demo scenario's fault around a race (harness/races.during), with a fault that only notes what happened."""
import time
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from flashsale.harness.races import Scenario, during


class Stack:
    def wired(self):
        return SimpleNamespace(payment_deadline_s=30.0)


def noted(log: list[str]):
    @contextmanager
    def fault(stack, seconds):
        log.append(f"begun for {seconds:g} s")
        try:
            yield
        finally:
            log.append("mended")
    return fault


def test_a_fault_at_zero_has_begun_before_the_race_and_lasts_past_the_deadline_when_asked():
    log: list[str] = []
    scenario = Scenario("down", noted(log), at_s=0, lasts_s=0.2, past_deadline=True)
    with during(Stack(), scenario) as mend:
        assert log == ["begun for 30.2 s"]  # before the block's first line: no buyer comes before it
        mend.set()
    assert log == ["begun for 30.2 s", "mended"]


def test_setting_the_event_mends_the_fault_sooner():
    log: list[str] = []
    started = time.monotonic()
    with during(Stack(), Scenario("down", noted(log), at_s=0, lasts_s=30)) as mend:
        mend.set()  # every buyer answered
    assert log[-1] == "mended" and time.monotonic() - started < 5


def test_a_fault_lasts_its_time_when_nothing_mends_it():
    log: list[str] = []
    started = time.monotonic()
    with during(Stack(), Scenario("down", noted(log), at_s=0.05, lasts_s=0.3)):
        pass
    assert log == ["begun for 0.3 s", "mended"] and time.monotonic() - started >= 0.35


def test_a_race_that_fails_mends_the_fault_at_once_and_its_error_is_raised():
    log: list[str] = []
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="the buyers' client died"):
        with during(Stack(), Scenario("down", noted(log), at_s=0, lasts_s=30)):
            raise RuntimeError("the buyers' client died")
    assert log[-1] == "mended" and time.monotonic() - started < 5


def test_a_fault_that_fails_to_begin_is_raised_in_the_races_thread():
    @contextmanager
    def broken(stack, seconds):
        raise ConnectionError("the provider's admin API refused")
        yield

    with pytest.raises(ConnectionError, match="admin API refused"):
        with during(Stack(), Scenario("down", broken, at_s=0, lasts_s=30)):
            pass

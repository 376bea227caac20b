"""When the stack waits in vain, its error says what the last probe met, not only that time ran out."""
import os
import signal

import pytest

from flashsale.settings import Settings
from flashsale.stack.control import Stack
from flashsale.stack.processes import StackError, alive, free_port


def test_a_service_that_never_answers_is_reported_with_the_probes_last_error(stack):
    [gateway] = stack.processes("gateway").values()
    os.kill(gateway.pid, signal.SIGSTOP)  # alive, port open, answering nothing: a stalled process
    try:
        with pytest.raises(StackError) as failed:
            stack.up(timeout=4)
    finally:
        os.kill(gateway.pid, signal.SIGCONT)
    message = str(failed.value)
    assert "gateway did not become healthy: not ready after 4 s (last error: ReadTimeout: " in message, message


@pytest.mark.broker_free
def test_an_up_that_fails_stops_what_it_started_and_leaves_an_empty_table(tmp_path):
    """A timeout too short for any service to become healthy: the servers start, the services spawn, `up` fails."""
    started: set[int] = set()

    class Noting(Stack):
        def noted(self, state):
            started.update(process.pid for process in state.processes.values())

    stack = Noting(Settings(home=tmp_path, durable=False, gateway_port=free_port(), shop_port=free_port(),
                            psp_port=free_port()))
    try:
        with pytest.raises(StackError, match="did not become healthy"):
            stack.up(timeout=0.2)
        assert len(started) >= 5, started  # tansu, PostgreSQL, Redis and services had started
        assert [pid for pid in started if alive(pid)] == []
        assert stack.processes() == {}
    finally:
        stack.down()

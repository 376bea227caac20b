"""When the stack waits in vain, its error says what the last probe met, not only that time ran out."""
import os
import signal

import pytest

from flashsale.stack.processes import StackError


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

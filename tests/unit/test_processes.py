"""Waits and probes of the stack's processes say what went wrong, on every platform."""
import socket

import psutil
import pytest

from flashsale.stack.processes import StackError, require_free, wait_until


def test_a_wait_that_fails_says_the_last_error_its_check_raised():
    def refused() -> bool:
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(StackError) as failed:
        wait_until(refused, 0.3, "postgres did not start")
    assert "postgres did not start: not ready after 0 s (last error: ConnectionRefusedError: " \
           "[Errno 111] Connection refused)" in str(failed.value)


def test_a_wait_whose_check_only_said_no_has_no_error_to_tell():
    with pytest.raises(StackError) as failed:
        wait_until(lambda: False, 0.2, "redis did not start")
    assert "not ready after 0 s." in str(failed.value) and "last error" not in str(failed.value)


def test_a_taken_port_is_named_where_sockets_cannot_be_listed(monkeypatch):
    """macOS lets only root list sockets: psutil raises AccessDenied there; the port is still named."""
    def denied(kind="inet"):
        raise psutil.AccessDenied()

    monkeypatch.setattr(psutil, "net_connections", denied)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(StackError, match=f"Port {port} for gateway is taken. Stop that process"):
            require_free(port, "gateway")

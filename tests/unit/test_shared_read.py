"""SharedRead: concurrent requests share one round trip, yet none is answered with a read older than itself."""
import asyncio

import pytest

from flashsale.adapters.shared_read import SharedRead, Stopped


class SlowStore:
    """A value that only changes when told to; each read takes a while and is counted."""

    def __init__(self):
        self.value, self.reads = 0, 0

    async def read(self) -> int:
        self.reads += 1
        seen = self.value  # what the store holds when the read starts
        await asyncio.sleep(0.01)
        return seen


def test_a_thousand_concurrent_requests_cost_a_couple_of_reads():
    async def scenario():
        store = SlowStore()
        shared = SharedRead(store.read)
        answers = await asyncio.gather(*(shared() for _ in range(1000)))
        return store.reads, answers

    reads, answers = asyncio.run(scenario())
    assert reads <= 2, f"{reads} reads for 1,000 requests that arrived together"
    assert answers == [0] * 1000


def test_a_request_never_gets_a_read_that_started_before_it_arrived():
    async def scenario():
        store = SlowStore()
        shared = SharedRead(store.read)
        early = asyncio.ensure_future(shared())
        await asyncio.sleep(0.001)  # the first read is under way now, and saw value 0
        store.value = 1  # a write (a reset) ...
        late = await shared()  # ... then a request: it must see the write
        return await early, late

    assert asyncio.run(scenario()) == (0, 1)


def test_a_failed_read_fails_its_waiters_and_the_next_request_reads_again():
    async def scenario():
        calls = 0

        async def flaky() -> str:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ConnectionError("redis is down")
            return "back"

        shared = SharedRead(flaky)
        with pytest.raises(ConnectionError):
            await shared()
        return await shared()

    assert asyncio.run(scenario()) == "back"


def test_a_waiter_that_hangs_up_does_not_cancel_the_others():
    async def scenario():
        shared = SharedRead(SlowStore().read)
        impatient, patient = asyncio.ensure_future(shared()), asyncio.ensure_future(shared())
        await asyncio.sleep(0)
        impatient.cancel()
        return await patient

    assert asyncio.run(scenario()) == 0


def test_the_reading_task_is_held_and_if_it_stops_nobody_waits_forever():
    async def scenario():
        never = asyncio.Event()

        async def hangs() -> int:
            await never.wait()
            return 0

        shared = SharedRead(hangs)
        task = shared.start()
        assert shared.start() is task  # one task, held by the SharedRead, for the server to watch
        waiting = asyncio.ensure_future(shared())
        await asyncio.sleep(0.01)
        task.cancel()  # the reading task stops (the server shuts down, or worse)
        with pytest.raises(Stopped):
            await asyncio.wait_for(waiting, 1)
        with pytest.raises(Stopped):
            await asyncio.wait_for(shared(), 1)

    asyncio.run(scenario())

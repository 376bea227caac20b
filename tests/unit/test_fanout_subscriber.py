"""A WebSocket subscriber keeps every order update, in order, and only the newest stock figure per product."""
import asyncio

from flashsale.services.fanout import QUEUE_LIMIT, Subscriber


def drain(subscriber: Subscriber) -> list[str]:
    async def take_all():
        got = []
        while subscriber.updates or subscriber.stock:
            got.append(await subscriber.next())
        return got

    return asyncio.run(take_all())


def test_order_updates_all_arrive_in_order_and_stock_only_newest():
    subscriber = Subscriber("u1")
    subscriber.put("pending")
    for left in (9, 8, 7):
        subscriber.put(f"stock {left}", stock_of="P")
    subscriber.put("confirmed")
    subscriber.put("other product 3", stock_of="Q")
    assert drain(subscriber) == ["pending", "confirmed", "stock 7", "other product 3"]


def test_a_client_that_falls_far_behind_loses_its_oldest_updates_not_its_newest():
    subscriber = Subscriber(None)
    for n in range(QUEUE_LIMIT + 5):
        subscriber.put(f"update {n}")
    got = drain(subscriber)
    assert len(got) == QUEUE_LIMIT and got[-1] == f"update {QUEUE_LIMIT + 4}"


def test_next_waits_for_a_message():
    async def scenario():
        subscriber = Subscriber(None)
        waiting = asyncio.ensure_future(subscriber.next())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        subscriber.put("hello")
        return await asyncio.wait_for(waiting, 1)

    assert asyncio.run(scenario()) == "hello"

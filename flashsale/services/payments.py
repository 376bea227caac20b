"""The payment service: inventory.reserved -> a charge at the provider -> payment.succeeded or payment.failed;
payment.refund_due -> a refund at the provider -> payment.refunded.

The middle step of the order's saga. The orderId is the charge's idempotency key, so a redelivered
reservation, a retried batch or a restart after `kill -9` never charges anyone twice: the provider answers
a key it has seen with its first answer. A decline is final (payment.failed: inventory gives the unit
back, orders cancels). An outage is not: the batch is retried with backoff, and postponed while the
provider stays down; nothing is committed past an unpaid order, and the orders wait RESERVED, until the
saga's deadline (services/expiry.py) cancels them. A charge that succeeds after that (the provider was slow,
or down longer than the deadline) is refunded, keyed by orderId too. The deadline is decided in one place, by
one clock (the orders row, PostgreSQL's): this service does not guess from an event's time whether an order
has expired, so a clock that differs here can never cost a buyer an order they could still pay for.
"""
import asyncio
import time
from collections.abc import Awaitable, Callable

from flashsale import events as ev
from flashsale.adapters import psp
from flashsale.adapters.dead_letters import Handler, Postponed
from flashsale.services.runner import run_consumer_service
from flashsale.settings import Settings

TOPICS = [ev.INVENTORY_EVENTS, ev.PAYMENT_EVENTS]  # payment.events: the refunds orders asks for

IN_FLIGHT = 32  # charges at once: each waits the provider's delay, so a batch of 100 takes ~4 delays, not 100
RETRY_FOR_S = 2.0  # then the loop gets the batch back (its heartbeat stays fresh) and tries it again


async def retried(call: Callable[[], Awaitable[ev.Event]], deadline: float) -> ev.Event | None:
    """What `call` tells, or None if the provider was down until `deadline`."""
    wait = 0.1
    while True:
        try:
            return await call()
        except psp.Unavailable:
            if time.monotonic() + wait > deadline:
                return None
            await asyncio.sleep(wait)
            wait = min(wait * 2, 1.0)


async def pay(provider: psp.PaymentProvider, event: ev.Event, amount: int, deadline: float) -> ev.Event | None:
    """The event that tells how the charge went, or None if the provider was down until `deadline`."""
    async def charge() -> ev.Event:
        try:
            await provider.charge(event.orderId, amount, key=event.orderId)
            return event.next(ev.PAYMENT_SUCCEEDED)
        except psp.Declined:
            return event.next(ev.PAYMENT_FAILED, reason=ev.PAYMENT_FAILED_REASON)
    return await retried(charge, deadline)


async def refund(provider: psp.PaymentProvider, event: ev.Event, deadline: float) -> ev.Event | None:
    """payment.refunded once the provider gave the late charge back, or None if it was down until `deadline`."""
    async def give_back() -> ev.Event:
        await provider.refund(event.orderId, key=event.orderId)
        return event.next(ev.PAYMENT_REFUNDED, reason=event.reason)
    return await retried(give_back, deadline)


async def handle(provider: psp.PaymentProvider, batch: list[ev.Event], price: int) -> list[ev.Event]:
    """Charge every reservation of the batch and refund every late charge, IN_FLIGHT at a time; all, or Postponed.

    Each at the price the buyer was shown (`priceCents`, event version 2); `price`, the list price, only for an
    event that names none.
    """
    gate, deadline = asyncio.Semaphore(IN_FLIGHT), time.monotonic() + RETRY_FOR_S

    async def one(event: ev.Event) -> ev.Event | None:
        async with gate:
            if event.type == ev.REFUND_DUE:
                return await refund(provider, event, deadline)
            return await pay(provider, event, (event.priceCents or price) * event.quantity, deadline)

    outcomes = await asyncio.gather(*(one(e) for e in batch if e.type in (ev.STOCK_RESERVED, ev.REFUND_DUE)))
    if None in outcomes:  # those charged already are charged once: their keys answer the same next time
        raise Postponed(f"the payment provider is unavailable; {outcomes.count(None)} orders wait")
    return [outcome for outcome in outcomes if outcome is not None]


def handler(settings: Settings) -> Handler:
    loop = asyncio.new_event_loop()  # one loop for the life of the process, so one pool of connections
    provider = psp.PaymentProvider(settings.psp_url, settings.psp_timeout_s)
    return lambda batch: loop.run_until_complete(handle(provider, batch, settings.price_cents))


if __name__ == "__main__":
    run_consumer_service("payments", TOPICS, handler)

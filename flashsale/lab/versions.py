"""Notebook 07, events change: an old writer, an old reader, a rename, and a fold over every version in the log.

The lab runs today's code only. What version 1 wrote, and how a version 1 consumer reads, are kept here:
`as_v1` writes an event as the version 1 gateway did, and `EventV1` is `events.Event` as version 1 had it.
"""
import json
import time
from collections.abc import Callable

import pandas as pd
from pydantic import BaseModel

from flashsale import events as ev
from flashsale.adapters import kafka, postgres
from flashsale.harness.checks import settle
from flashsale.lab.tap import read
from flashsale.stack.control import Stack


class EventV1(BaseModel):
    """`flashsale.events.Event` as version 1 had it: no `version`, no `priceCents`. Unknown fields are ignored."""

    eventId: str
    type: str
    occurredAt: str
    orderId: ev.Text
    userId: ev.Text
    productId: ev.Text
    quantity: ev.Int32
    saleId: ev.Int32
    reason: ev.Text | None = None
    availableStock: int | None = None


def as_v1(event: ev.Event) -> bytes:
    """The JSON the version 1 gateway wrote for this event: the same fields, without a version and a price."""
    return event.model_dump_json(exclude_none=True, exclude={"version", "priceCents"}).encode()


def order_created(stack: Stack, user: str) -> ev.Event:
    """An order.created for the current sale, as today's gateway writes it (at today's price)."""
    settings, sale = stack.wired(), stack.sale()
    if sale is None:
        raise LookupError("no sale: stack.reset() first")
    return ev.Event(type=ev.ORDER_CREATED, orderId=f"{user}-{sale.saleId}-{time.monotonic_ns()}", userId=user,
                    productId=sale.productId, quantity=1, saleId=sale.saleId, priceCents=settings.price_cents)


def publish(stack: Stack, topic: str, messages: list[tuple[str, bytes]]) -> None:
    """(key, bytes) onto a real topic, as any producer would write them; returns once the broker has them all."""
    producer, failures = kafka.reliable_producer(stack.wired().kafka_bootstrap_servers), []
    for key, value in messages:
        producer.produce(topic, value, key=key, on_delivery=lambda err, msg: failures.extend([err] if err else []))
    if producer.flush(30) or failures:
        raise RuntimeError(f"the broker did not take them: {failures or 'timed out'}")


def old_gateway(stack: Stack, buyers: int, timeout: float = 90) -> int:
    """`buyers` orders in the current sale, written as the version 1 gateway wrote them; waits until all are decided."""
    orders = [order_created(stack, f"v1-buyer-{i:04d}") for i in range(buyers)]
    publish(stack, ev.ORDER_EVENTS, [(order.key, as_v1(order)) for order in orders])
    if settle(stack.wired(), [o.orderId for o in orders], timeout) is None:
        raise TimeoutError(f"the services did not decide {buyers} orders in {timeout} s: are they running?")
    return buyers


def sold(stack: Stack, sale_id: int) -> dict:
    """What PostgreSQL says of a sale: orders by status, and what the provider charged per phone sold."""
    with postgres.connect(stack.wired().database_url) as pg:
        rows = pg.execute("SELECT status, count(*) FROM orders WHERE sale_id = %s GROUP BY status", (sale_id,))
        statuses: dict[str, int] = dict(rows.fetchall())
        prices = pg.execute("SELECT DISTINCT c.amount / o.quantity FROM charges c JOIN orders o USING (order_id) "
                            "WHERE o.sale_id = %s AND c.status = 'succeeded'", (sale_id,)).fetchall()
    return {**statuses, "charged per phone (cents)": sorted(p for (p,) in prices)}


def raw(stack: Stack, topic: str = ev.ORDER_EVENTS) -> list[bytes]:
    """Every message of `topic` on the real broker, from its beginning, as the bytes that were written."""
    settings = stack.wired()
    return [m.value() or b"" for m in read(settings.kafka_bootstrap_servers, topic, settings.partitions)]


def decode_all(decode: Callable[[bytes], BaseModel], messages: list[bytes]) -> list:
    """Each message decoded by `decode`; those it cannot read are left out (the services dead-letter them)."""
    decoded = []
    for message in messages:
        try:
            decoded.append(decode(message))
        except ValueError:
            continue
    return decoded


def revenue(events: list[ev.Event]) -> dict[int, int]:
    """{saleId: cents}: each confirmed order at the price on its order.created, counted once however often confirmed."""
    price = {e.orderId: (e.priceCents or 0) * e.quantity for e in events if e.type == ev.ORDER_CREATED}
    confirmed = {e.orderId: e.saleId for e in events if e.type == ev.ORDER_CONFIRMED}
    totals: dict[int, int] = {}
    for order_id, sale_id in confirmed.items():
        totals[sale_id] = totals.get(sale_id, 0) + price[order_id]
    return totals


def charged(stack: Stack) -> dict[int, int]:
    """{saleId: cents}: what the payment provider's ledger holds, per sale: the money, whatever the log says."""
    with postgres.connect(stack.wired().database_url) as pg:
        return dict(pg.execute("SELECT o.sale_id, sum(c.amount)::bigint FROM charges c JOIN orders o USING (order_id) "
                               "WHERE c.status = 'succeeded' GROUP BY o.sale_id").fetchall())


def renamed(event: ev.Event, old: str, new: str) -> bytes:
    """The event's JSON with one field renamed, as a producer whose author "only renamed a field" writes it."""
    data = event.model_dump(mode="json", exclude_none=True)
    data[new] = data.pop(old)
    return json.dumps(data).encode()


def dead_letters(stack: Stack, order_id: str, timeout: float = 30) -> pd.DataFrame:
    """The copies of one order's events on order.events.dlq, with the error each consumer gave; waits for the first."""
    settings, deadline = stack.wired(), time.monotonic() + timeout
    while True:
        messages = [m for m in read(settings.kafka_bootstrap_servers, ev.dead_letter_topic(ev.ORDER_EVENTS),
                                    settings.partitions) if m.key() == order_id.encode()]
        if messages or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return pd.DataFrame([{"partition": m.partition(), "offset": m.offset(), "error": _first_error(m)}
                         for m in messages], columns=["partition", "offset", "error"])


def _first_error(message) -> str:
    """'quantity: Field required', from the header a consumer gives a dead letter (pydantic's error, cut short)."""
    lines = dict(message.headers() or []).get("error", b"").decode().splitlines()
    return f"{lines[1]}: {lines[2].split(' [')[0].strip()}" if len(lines) > 2 else " ".join(lines)


def recorded(stack: Stack, order_id: str) -> bool:
    """Whether the orders service has a row for this order."""
    with postgres.connect(stack.wired().database_url) as pg:
        return pg.execute("SELECT 1 FROM orders WHERE order_id = %s", (order_id,)).fetchone() is not None


"""Exercise 17: rename a field without breaking anyone (version 3 of the events renames userId to buyerId).

The learner writes two functions, the two halves of "expand and contract":
- `upcast_v3(data) -> dict`: any event as it lies in the log (version 1, 2 or 3) in version 3's shape;
- `to_wire(event) -> dict`: what a version 3 writer puts on the topic while version 2 consumers still run.
The check upcasts every event of the notebook's real `order.events` (both versions are there), then sends a
version 3 order, written by `to_wire`, to the running services, which are version 2 consumers.
"""
import copy
import json
from typing import Literal

from pydantic import BaseModel, ValidationError

from flashsale import events as ev
from flashsale.adapters import postgres
from flashsale.harness.checks import settle
from flashsale.lab.exercises import Wrong, expect, passed, run_id
from flashsale.lab.versions import dead_letters, publish, raw
from flashsale.stack.control import Stack


class EventV3(BaseModel):
    """Version 3 of `flashsale.events.Event`: `userId` is now `buyerId`. The price stays optional, as in version 2
    (an event a test or another tool wrote names none); version 1's, which had no field for it, get the old price."""

    version: Literal[3]
    eventId: str
    type: str
    occurredAt: str
    orderId: ev.Text
    buyerId: ev.Text  # was userId
    productId: ev.Text
    quantity: ev.Int32
    saleId: ev.Int32
    priceCents: ev.Int32 | None = None
    reason: ev.Text | None = None
    availableStock: int | None = None


def one_of_each(messages: list[bytes]) -> list[dict]:
    """The first event of each version in the log, as the JSON it was written as."""
    seen: dict[int, dict] = {}
    for message in messages:
        data = json.loads(message)
        seen.setdefault(data.get("version", 1), data)
    return [seen[v] for v in sorted(seen)]


def check(stack: Stack, upcast_v3, to_wire) -> None:
    log = [json.loads(m) for m in raw(stack, ev.ORDER_EVENTS) if _readable(m)]
    versions = {data.get("version", 1) for data in log}
    expect({1, 2} <= versions, "run the cells above first: the log needs events of version 1 and of version 2")
    for data in log:
        judge_upcast(upcast_v3, data)
    passed(f"all {len(log)} events of order.events (versions {sorted(versions)}) upcast to version 3, each "
           "with its buyer and its price, the input left as it was")
    passed("upcasting a version 3 event changes nothing: upcast_v3(upcast_v3(e)) == upcast_v3(e)")

    run, sale = run_id(), stack.sale()
    if sale is None:
        raise LookupError("no sale: stack.reset() first")
    event = {"version": 3, "eventId": f"ex17-{run}", "type": ev.ORDER_CREATED, "occurredAt": ev.now_iso(),
             "orderId": f"ex17-{run}", "buyerId": f"buyer-{run}", "productId": sale["productId"], "quantity": 1,
             "saleId": sale["saleId"], "priceCents": stack.wired().price_cents}
    given = copy.deepcopy(event)
    wire = to_wire(given)
    expect(given == event, "to_wire changed the event it was given: build a new dict ({**event, ...})")
    expect(isinstance(wire, dict), f"to_wire must return a dict (the JSON to write); it returned {wire!r}")
    expect(wire.get("version") == 3, f"a version 3 writer says so: 'version': 3 (it wrote {wire.get('version')!r})")
    try:
        back = EventV3.model_validate(upcast_v3(copy.deepcopy(wire)))
    except ValidationError as error:
        raise Wrong(f"a version 3 reader cannot read what to_wire writes: {_first(error)}") from None
    expect(back.buyerId == event["buyerId"], f"a version 3 reader reads buyerId={back.buyerId!r} from what to_wire "
           f"writes; it should read {event['buyerId']!r}")
    passed("a version 3 consumer reads what to_wire writes")

    publish(stack, ev.ORDER_EVENTS, [(event["orderId"], json.dumps(wire).encode())])
    settle(stack.wired(), [event["orderId"]], timeout=30)
    with postgres.connect(stack.wired().database_url) as pg:
        row = pg.execute("SELECT user_id, status FROM orders WHERE order_id = %s", (event["orderId"],)).fetchone()
    if row is None:
        letters = dead_letters(stack, event["orderId"], timeout=5)
        why = f" ({letters.error.iloc[0]})" if not letters.empty else ""
        raise Wrong("the running services are version 2 consumers, and they could not read the order to_wire wrote: "
                    f"{'dead-lettered' if not letters.empty else 'no row after 30 s'}{why}. While any consumer "
                    "still reads the old name, a writer writes both names (expand), with the same value")
    expect(row[0] == event["buyerId"], f"the orders service recorded the buyer as {row[0]!r}, not "
           f"{event['buyerId']!r}: under the old name, write the same value as under the new one")
    passed(f"the running version 2 services read it too: the order was recorded for {row[0]}, and {row[1]}")
    print("All checks passed: version 3 is out, and nobody had to be upgraded the same day.")


def judge_upcast(upcast_v3, data: dict) -> None:
    version, given = data.get("version", 1), copy.deepcopy(data)
    what = f"a version {version} {data.get('type')} (orderId {data.get('orderId')})"
    out = upcast_v3(given)
    expect(given == data, f"upcast_v3 changed the event it was given ({what}): the caller's dict, perhaps the only "
           "record of what was written, must stay as it was. Build a new dict ({**data, ...})")
    expect(isinstance(out, dict), f"upcast_v3 must return a dict; for {what} it returned {out!r}")
    try:
        event = EventV3.model_validate(out)
    except ValidationError as error:
        raise Wrong(f"{what} did not come out as version 3: {_first(error)}. Every version in the log must: "
                    "version 1 has no 'version' field (and no price), version 2 has 'userId'") from None
    buyer = data.get("userId", data.get("buyerId"))
    expect(event.buyerId == buyer, f"{what}: buyerId is {event.buyerId!r}; the event's buyer is {buyer!r}")
    price = data.get("priceCents", ev.V1_PRICE_CENTS if version == 1 else None)
    expect(event.priceCents == price, f"{what}: priceCents is {event.priceCents}, it should be {price} "
           "(version 1 named no price: every sale of version 1 was at events.V1_PRICE_CENTS)")
    kept = {k: v for k, v in data.items() if k not in ("version", "userId", "priceCents")}
    lost = [k for k, v in kept.items() if out.get(k) != v]
    expect(not lost, f"{what}: the fields {lost} did not come through unchanged")
    again = copy.deepcopy(out)
    expect(upcast_v3(again) == out, f"upcasting {what} twice gave something else than once: a version 3 event "
           "must pass through unchanged")


def _readable(message: bytes) -> bool:
    """An event the services read (a poison message, which they dead-letter, is nobody's version)."""
    try:
        ev.Event.from_json(message)
        return True
    except ValueError:
        return False


def _first(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{'.'.join(map(str, first['loc'])) or 'the event'}: {first['msg']}"


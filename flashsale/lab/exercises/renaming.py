"""Exercise 17: rename a field without breaking anyone (version 3 of the events renames userId to buyerId).

The learner writes two functions, the two halves of "expand and contract":
- `upcast_v3(data) -> dict`: any event as it lies in the log (version 1, 2 or 3) in version 3's shape;
- `to_wire(event) -> dict`: what a version 3 writer puts on the topic while version 2 consumers still run.
The check upcasts an event of each version with every field set, then every event of the notebook's real
`order.events` (both versions are there). Then, in a sale of its own, it writes a version 3 order of two phones
at a promotion price with `to_wire` onto the real topic, and follows it through the running services (version 2
consumers): recorded for its buyer, confirmed, charged the promotion price for both phones, and each of its
events on the log, in order, read through `upcast_v3` with its buyer.
"""
import contextlib
import copy
import json
import time
import uuid
from typing import Literal

from pydantic import BaseModel, ValidationError

from flashsale import events as ev
from flashsale.adapters import postgres
from flashsale.harness.checks import settle
from flashsale.lab.exercises import Rule, Wrong, expect, run_id, short, step
from flashsale.lab.versions import dead_letters, publish, raw
from flashsale.stack.control import Stack

RULES = (
    Rule(1, "`upcast_v3` turns a version 1 event (no `version` field) into version 3: `buyerId` in place of "
            "`userId`, and the price it never named (`events.V1_PRICE_CENTS`)."),
    Rule(2, "`upcast_v3` turns a version 2 event into version 3: `buyerId` in place of `userId`."),
    Rule(3, "`upcast_v3` returns a version 3 event as it is."),
    Rule(4, "Both functions carry every other field through as it was."),
    Rule(5, "Neither function changes the dict it is given."),
    Rule(6, "`to_wire` writes a version 3 event that both a version 3 reader (through `upcast_v3`) and the running "
            "version 2 services read, with the right buyer."),
)
V1, V2, V3, KEPT, UNTOUCHED, WIRE = RULES
BY_VERSION = {1: V1, 2: V2, 3: V3}
STEPS = {
    "A": "an event of each version, every field set, upcast twice",
    "B": "every event of the real order.events, upcast twice",
    "C": "a version 3 order of 2 phones at a promotion price, as `to_wire` writes it, read by a version 3 reader",
    "D": "that order through the running version 2 services: recorded for its buyer, confirmed, charged the "
         "promotion price, each of its events on the log read back",
}
PROMOTION = 99_900  # the check's version 3 order is at this price, not the list price: a lost price shows
LIFE = [ev.ORDER_CREATED, ev.ORDER_SAVED, ev.ORDER_RESERVED, ev.ORDER_CONFIRMED]  # an order's events on the log


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


def samples(run: str) -> list[dict]:
    """An event of each version with every field it can have set, each price a different one. Version 2 first: a
    mistake on the path every older version takes (version 1 goes through version 2) shows on it, under rule 2."""
    common = {"type": ev.ORDER_CANCELLED, "occurredAt": ev.now_iso(), "productId": "FLASH_SALE_PRODUCT_001",
              "quantity": 3, "saleId": 2**31 - 17, "reason": "SOLD_OUT", "availableStock": 0}
    return [{"version": 2, "eventId": str(uuid.uuid4()), "orderId": f"ex17-{run}-v2", "userId": f"v2-buyer-{run}",
             **common, "priceCents": 109_900},
            {"eventId": str(uuid.uuid4()), "orderId": f"ex17-{run}-v1", "userId": f"v1-buyer-{run}", **common},
            {"version": 3, "eventId": str(uuid.uuid4()), "orderId": f"ex17-{run}-v3", "buyerId": f"v3-buyer-{run}",
             **common, "priceCents": PROMOTION}]


def obvious_upcast(data: dict) -> dict:
    """Half of the obvious answer, and right: notebook 07's upcaster, then version 2 renamed."""
    data = ev.upcast(data)
    if data.get("version") == 2:
        data = {k: v for k, v in data.items() if k != "userId"} | {"version": 3, "buyerId": data["userId"]}
    return data


def obvious_wire(event: dict) -> dict:
    """The other half of the obvious answer, and the subject of the notebook's prediction: version 3 is written as
    version 3 is, its new name only."""
    return dict(event)


def check(stack: Stack, upcast_v3, to_wire) -> None:
    run = run_id()
    with step("A", STEPS["A"]):
        for data in samples(run):
            judge_upcast(upcast_v3, data)

    with step("B", STEPS["B"]):
        log = [json.loads(m) for m in raw(stack, ev.ORDER_EVENTS) if _readable(m)]
        for data in log:
            judge_upcast(upcast_v3, data)
        versions = sorted({data.get("version", 1) for data in log})
        print(f"  all {len(log)} events of order.events (versions {', '.join(map(str, versions))}) upcast, twice")

    settings = stack.wired()
    sale = stack.reset(stock=10, per_user_limit=2)  # a sale of the check's own, with phones left for its order
    order_id, buyer, quantity = f"ex17-{run}", f"buyer-{run}", 2
    event: dict = {"version": 3, "eventId": f"ex17-{run}", "type": ev.ORDER_CREATED, "occurredAt": ev.now_iso(),
                   "orderId": order_id, "buyerId": buyer, "productId": settings.product_id, "quantity": quantity,
                   "saleId": sale.saleId, "priceCents": PROMOTION}
    with step("C", STEPS["C"]):
        given = copy.deepcopy(event)
        wire = to_wire(given)
        expect(given == event, "to_wire changed the event it was given: build a new dict ({**event, ...})",
               UNTOUCHED)
        expect(isinstance(wire, dict), f"to_wire must return a dict (the JSON to write); it returned {wire!r}", WIRE)
        expect(wire.get("version") == 3, f"a version 3 writer says so: 'version': 3 (it wrote "
               f"{wire.get('version')!r})", WIRE)
        try:
            back = EventV3.model_validate(upcast_v3(copy.deepcopy(wire)))
        except ValidationError as error:
            raise Wrong(f"a version 3 reader cannot read what to_wire writes: {_first(error)}", WIRE) from None
        expect(back.buyerId == buyer, f"a version 3 reader reads buyerId={back.buyerId!r} from what to_wire writes; "
               f"it should read {buyer!r}", WIRE)
        lost = [k for k, v in event.items() if getattr(back, k) != v]
        expect(not lost, f"a version 3 reader reads what to_wire writes with other {', '.join(lost)} than the event "
               "had: the wire form carries every field of the event as it is", KEPT)

    with step("D", STEPS["D"]):
        publish(stack, ev.ORDER_EVENTS, [(order_id, json.dumps(wire).encode())])
        letters = follow(stack, order_id)
        with postgres.connect(settings.database_url) as pg:
            row = pg.execute("SELECT user_id, status FROM orders WHERE order_id = %s", (order_id,)).fetchone()
            charged = postgres.scalar(pg, "SELECT coalesce(sum(amount), 0) FROM charges WHERE order_id = %s AND "
                                          "status = 'succeeded'", (order_id,))
        if row is None:
            dead = letters is not None and not letters.empty
            why = f"dead-lettered ({letters.error.iloc[0]})" if dead else "no row after 30 s"
            raise Wrong("the running services are version 2 consumers, and they could not read the order to_wire "
                        f"wrote: {why}. While any consumer still reads the old name, a writer writes both names "
                        "(expand), with the same value", WIRE)
        expect(row[0] == buyer, f"the orders service recorded the buyer as {row[0]!r}, not {buyer!r}: under the old "
               "name, write the same value as under the new one", WIRE)
        price = PROMOTION * quantity
        expect(row[1] == "CONFIRMED" and charged == price, f"the order of {quantity} phones at {PROMOTION} cents "
               f"ended {row[1]}, charged {charged} cents, not {price}: the services read other fields than the "
               "event had. The wire form carries every field as it is", KEPT)
        trail = events_of(stack, order_id)
        steps = [e["type"] for e in trail]
        expect(steps[:1] == [ev.ORDER_CREATED] and steps[-1:] == [ev.ORDER_CONFIRMED]
               and steps == sorted(steps, key=_stage), f"the order's events on order.events, in the log's "
               f"order: {short(steps, 8)}", WIRE)
        for data in trail:
            named = EventV3.model_validate(upcast_v3(copy.deepcopy(data))).buyerId
            expect(named == buyer, f"read through upcast_v3, the order's {data['type']} names the buyer {named!r}, "
                   f"not {buyer!r}", WIRE)
        print(f"  recorded for {row[0]}, {row[1]}, charged {charged} cents for {quantity} phones; its events on the "
              f"log: {', '.join(steps)}")
    print("All checks passed: version 3 is out, and nobody had to be upgraded the same day.")


def follow(stack: Stack, order_id: str, timeout: float = 30):
    """Wait until the services have decided the order (None), or dead-lettered it (its dead letters), or `timeout`."""
    deadline = time.monotonic() + timeout
    while settle(stack.wired(), [order_id], timeout=1) is None:
        letters = dead_letters(stack, order_id, timeout=0)
        if not letters.empty or time.monotonic() > deadline:
            return letters
    return None


def events_of(stack: Stack, order_id: str, timeout: float = 10) -> list[dict]:
    """An order's events on order.events, in order (one key, one partition), once its order.confirmed is there."""
    deadline = time.monotonic() + timeout
    while True:
        trail = [e for e in (json.loads(m) for m in raw(stack, ev.ORDER_EVENTS) if _readable(m))
                 if e.get("orderId") == order_id]
        if any(e.get("type") == ev.ORDER_CONFIRMED for e in trail) or time.monotonic() > deadline:
            return trail
        time.sleep(0.2)


def judge_upcast(upcast_v3, data: dict) -> None:
    version, given = data.get("version", 1), copy.deepcopy(data)
    what = f"a version {version} {data.get('type')} (orderId {data.get('orderId')})"
    out = upcast_v3(given)
    expect(given == data, f"upcast_v3 changed the event it was given ({what}): the caller's dict, perhaps the only "
           "record of what was written, must stay as it was. Build a new dict ({**data, ...})", UNTOUCHED)
    rule = BY_VERSION.get(version, V3)
    if version == 3:
        expect(out == data, f"{what} came out changed: {_diff(data, out)}. A version 3 event is upcast already: "
               "return it as it is", V3)
        return
    expect(isinstance(out, dict), f"upcast_v3 must return a dict; for {what} it returned {out!r}", rule)
    try:
        event = EventV3.model_validate(out)
    except ValidationError as error:
        raise Wrong(f"{what} did not come out as version 3: {_first(error)}. Every version in the log must: "
                    "version 1 has no 'version' field (and no price), version 2 has 'userId'", rule) from None
    buyer = data.get("userId")
    expect(event.buyerId == buyer and "userId" not in out, f"{what}: buyerId is {event.buyerId!r}"
           + (", and userId is still there" if "userId" in out else "") + f"; the event's buyer is {buyer!r}, and "
           "version 3 names it buyerId only", rule)
    if version == 1:
        expect(event.priceCents == ev.V1_PRICE_CENTS, f"{what}: priceCents is {event.priceCents}, it should be "
               f"{ev.V1_PRICE_CENTS} (version 1 named no price: every sale of version 1 was at events.V1_PRICE_CENTS)",
               V1)
    kept = {k: v for k, v in data.items() if k not in ("version", "userId")}
    lost = [k for k, v in kept.items() if out.get(k) != v]
    expect(not lost, f"{what}: {_diff(kept, {k: out.get(k) for k in kept})}: every other field comes through as it "
           "was", KEPT)
    again = upcast_v3(copy.deepcopy(out))
    expect(again == out, f"upcasting {what} twice gave something else than once ({_diff(out, again)}): a version 3 "
           "event must pass through unchanged", V3)


def _diff(before: dict, after) -> str:
    if not isinstance(after, dict):
        return f"{after!r}"
    changed = [f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in sorted(set(before) | set(after))
               if before.get(k) != after.get(k)]
    return short(changed)


def _stage(event_type: str) -> int:
    return LIFE.index(event_type) if event_type in LIFE else len(LIFE)


def _readable(message: bytes) -> bool:
    """An event the services read (a poison message, which they dead-letter, is nobody's version)."""
    with contextlib.suppress(ValueError):
        return bool(ev.Event.from_json(message))
    return False


def _first(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{'.'.join(map(str, first['loc'])) or 'the event'}: {first['msg']}"

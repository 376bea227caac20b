"""The exercises' checks catch the mistakes learners make, and say what is wrong.

A check that passes a wrong answer teaches the wrong lesson. Each test here hands a check a
typical wrong answer (the seed project's, or the obvious one) and expects the check to fail with
a message that names the mistake. The solutions passing is test_exercises.py's business.
"""
import contextlib
import math
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psycopg
import pytest
from confluent_kafka import TopicPartition
from pydantic import ValidationError

from flashsale import events as ev
from flashsale.lab.exercises import (
    Wrong,
    consumer,
    limit,
    outbox,
    poison,
    ratelimit,
    readmodel,
    renaming,
    reservation,
    transactions as eos,
)
from flashsale.services import invoices

ROOT = Path(__file__).resolve().parents[2]

RESERVE = """
local decided = redis.call('HGET', KEYS[2], ARGV[1])
local stock = tonumber(redis.call('GET', KEYS[1]) or '0')
if decided then return {decided, stock} end
local decision = 'SOLD_OUT'
if stock >= tonumber(ARGV[2]) then
  stock = redis.call('DECRBY', KEYS[1], ARGV[2])
  decision = 'RESERVED'
end
redis.call('HSET', KEYS[2], ARGV[1], decision)
return {decision, stock}
"""
# Rule 3 half kept: a reservation is remembered, a refusal is not; the answer stays right while the stock is 0.
REMEMBERS_ONLY_RESERVATIONS = """
local decided = redis.call('HGET', KEYS[2], ARGV[1])
local stock = tonumber(redis.call('GET', KEYS[1]) or '0')
if decided then return {decided, stock} end
if stock >= tonumber(ARGV[2]) then
  stock = redis.call('DECRBY', KEYS[1], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[1], 'RESERVED')
  return {'RESERVED', stock}
end
return {'SOLD_OUT', stock}
"""
SEED = """
local left = redis.call('DECRBY', KEYS[1], ARGV[2])
if left < 0 then redis.call('INCRBY', KEYS[1], ARGV[2]); return {'SOLD_OUT', left + tonumber(ARGV[2])} end
return {'RESERVED', left}
"""


def fails(check, *args, saying: str) -> str:
    with pytest.raises(AssertionError) as wrong:
        check(*args)
    assert saying in str(wrong.value), str(wrong.value)
    return str(wrong.value)


@pytest.mark.parametrize("script, saying", [
    (SEED, "remember each orderId's decision"),
    (RESERVE.replace("stock >= tonumber(ARGV[2])", "stock > 0"), "covers the quantity before it decrements"),
    (RESERVE.replace("if stock >= tonumber(ARGV[2]) then", "if true then"), "stock went below zero"),
    (RESERVE.replace("return {decision, stock}", "return decision"), "a table of two"),
    (REMEMBERS_ONLY_RESERVATIONS, "Record SOLD_OUT too"),
], ids=["seed-decr-then-incr", "stock-above-zero", "no-check", "wrong-reply", "remembers-only-reservations"])
def test_reservation_check_catches(stack, script, saying):
    fails(reservation.check, stack, script, saying=saying)


def check_then_act(redis, keys, order_id, user_id, quantity, limit_):
    if int(redis.hget(keys.user_units, user_id) or 0) + quantity > limit_:
        return "PER_USER_LIMIT"
    if int(redis.get(keys.stock) or 0) < quantity:
        return "SOLD_OUT"
    redis.decrby(keys.stock, quantity)
    redis.hincrby(keys.user_units, user_id, quantity)
    return "RESERVED"


def counts_refusals(redis, keys, order_id, user_id, quantity, limit_):
    if redis.hincrby(keys.user_units, user_id, quantity) > limit_:  # counted before it is decided, never undone
        return "PER_USER_LIMIT"
    return "RESERVED" if redis.decrby(keys.stock, quantity) >= 0 else "SOLD_OUT"


@pytest.mark.parametrize("reserve, saying", [
    (check_then_act, "users got more than 1 unit"),
    (counts_refusals, "a refused order must not count against its buyer"),
], ids=["check-then-act", "counts-refusals"])
def test_limit_check_catches(stack, reserve, saying):
    fails(limit.check, stack, reserve, saying=saying)


def decode_all(messages, producer):
    return [ev.Event.model_validate_json(m.value() or b"") for m in messages]


def skip_poison(messages, producer):
    events = []
    for m in messages:
        with contextlib.suppress(ValidationError):
            events.append(ev.Event.model_validate_json(m.value() or b""))
    return events


def dead_letter_as_text(messages, producer):
    events = []
    for m in messages:
        try:
            events.append(ev.Event.model_validate_json(m.value() or b""))
        except ValidationError as error:
            producer.produce(ev.dead_letter_topic(m.topic()), str(error).encode(), key=m.key())
    return events


@pytest.mark.parametrize("decode, saying", [
    (decode_all, "the consumer is stuck"),
    (skip_poison, "poison messages are not in"),
    (dead_letter_as_text, "must keep the original bytes"),
], ids=["no-dead-letter", "dropped", "altered"])
def test_poison_check_catches(stack, decode, saying):
    fails(poison.check, stack, decode, saying=saying)


INSERT = ("INSERT INTO orders (order_id, sale_id, user_id, product_id, quantity, status) "
          "VALUES (%s, %s, %s, %s, %s, 'PENDING')")
GUARDED = "UPDATE orders SET status = %s, reason = %s WHERE order_id = %s AND status = 'PENDING'"
FINAL = {ev.STOCK_RESERVED: "CONFIRMED", ev.STOCK_INSUFFICIENT: "CANCELLED"}
ANNOUNCE = {"PENDING": ev.ORDER_SAVED, "CONFIRMED": ev.ORDER_CONFIRMED, "CANCELLED": ev.ORDER_CANCELLED}


def orders_handler(insert: str, update: str, announce_row: bool = True):
    """A handler of the orders table made of these two statements; it announces what the row says (or the event)."""
    def handle(conn, event):
        if event.type == ev.ORDER_CREATED:
            conn.execute(insert, (event.orderId, event.saleId, event.userId, event.productId, event.quantity))
        elif event.type in FINAL:
            conn.execute(update, (FINAL[event.type], event.reason, event.orderId))
        else:
            return None
        row = conn.execute("SELECT status FROM orders WHERE order_id = %s", (event.orderId,)).fetchone()
        if row is None:
            return None
        said = "PENDING" if event.type == ev.ORDER_CREATED else FINAL[event.type]
        return event.next(ANNOUNCE[row[0] if announce_row else said])
    return handle


def announces_only_changes(conn, event):
    """Announces a change only when its own statement made one (rowcount): a repeated decision announces nothing."""
    if event.type == ev.ORDER_CREATED:
        changed = conn.execute(INSERT + " ON CONFLICT (order_id) DO NOTHING",
                               (event.orderId, event.saleId, event.userId, event.productId, event.quantity)).rowcount
        return event.next(ev.ORDER_SAVED) if changed else None
    if event.type in FINAL:
        changed = conn.execute(GUARDED, (FINAL[event.type], event.reason, event.orderId)).rowcount
        return event.next(ANNOUNCE[FINAL[event.type]]) if changed else None
    return None


def announces_a_new_order_every_time(conn, event):
    """The table's first line taken literally: order.created -> order.saved, whatever the row says."""
    said = orders_handler(INSERT + " ON CONFLICT (order_id) DO NOTHING", GUARDED)(conn, event)
    return event.next(ev.ORDER_SAVED) if event.type == ev.ORDER_CREATED else said


def remembers_in_memory():
    """Dedupe by eventId in a set: right as long as no batch ever fails, and the process never restarts."""
    seen = set()
    plain = orders_handler(INSERT, GUARDED)

    def handle(conn, event):
        if event.eventId in seen:
            row = conn.execute("SELECT status FROM orders WHERE order_id = %s", (event.orderId,)).fetchone()
            return event.next(ANNOUNCE[row[0]]) if row and event.type in FINAL else None
        seen.add(event.eventId)
        return plain(conn, event)
    return handle


def checks_then_inserts(conn, event):
    """Is the row there? If not, insert it: two statements, with a gap between them."""
    if event.type == ev.ORDER_CREATED and conn.execute("SELECT 1 FROM orders WHERE order_id = %s",
                                                       (event.orderId,)).fetchone():
        return orders_handler(INSERT + " ON CONFLICT (order_id) DO NOTHING", GUARDED)(conn, event)
    return orders_handler(INSERT, GUARDED)(conn, event)


def checks_then_updates(conn, event):
    """Is the row PENDING? Then update it: right one at a time, wrong when two decisions come at once."""
    if event.type in FINAL:
        row = conn.execute("SELECT status FROM orders WHERE order_id = %s", (event.orderId,)).fetchone()
        if row is not None and row[0] == "PENDING":
            conn.execute("UPDATE orders SET status = %s, reason = %s WHERE order_id = %s",
                         (FINAL[event.type], event.reason, event.orderId))
        if row is None:
            return None
        now = conn.execute("SELECT status FROM orders WHERE order_id = %s", (event.orderId,)).fetchone()[0]
        return event.next(ANNOUNCE[now])
    return orders_handler(INSERT + " ON CONFLICT (order_id) DO NOTHING", GUARDED)(conn, event)


@pytest.mark.parametrize("handle, saying", [
    (orders_handler(INSERT, GUARDED), "the handler must be safe to run twice"),
    (orders_handler(INSERT + " ON CONFLICT (order_id) DO UPDATE SET status = 'PENDING'", GUARDED),
     "moved a CONFIRMED order back to PENDING"),
    (orders_handler(INSERT + " ON CONFLICT (order_id) DO NOTHING", GUARDED.replace(" AND status = 'PENDING'", "")),
     "only a PENDING row may move"),
    (announces_a_new_order_every_time, "must not announce order.saved again"),
    (orders_handler(INSERT + " ON CONFLICT (order_id) DO NOTHING", GUARDED, announce_row=False),
     "announce what the row says, not what the event asked for"),
    (announces_only_changes, "The first announcement may never have left"),
    (remembers_in_memory(), "remembered the event outside the database"),
    (checks_then_inserts, "let one statement check and act"),
    (checks_then_updates, "let the UPDATE check for itself"),
], ids=["plain-insert", "upsert", "unguarded-update", "announces-created-again", "announces-the-event",
        "announces-only-changes", "remembers-in-memory", "checks-then-inserts", "checks-then-updates"])
def test_consumer_check_catches(wired, handle, saying):
    """By hand only: the session's stack runs a real order service, so the check's own would compete with it."""
    fails(consumer.by_hand, wired.database_url, handle, f"wrong-{uuid.uuid4().hex[:6]}", saying=saying)


def test_consumer_check_shows_a_sql_error_on_the_first_delivery_as_it_is(wired):
    """A typo in the SQL is not a redelivery problem: the learner sees PostgreSQL's own words about it."""
    handle = orders_handler(INSERT.replace("quantity, status", "quantity, state"), GUARDED)
    with pytest.raises(psycopg.errors.UndefinedColumn) as error:
        consumer.by_hand(wired.database_url, handle, f"typo-{uuid.uuid4().hex[:6]}")
    assert "safe to run twice" not in str(error.value)
    assert "the first order.created" in "".join(getattr(error.value, "__notes__", []))


def set_status_in_two_transactions(conn, order_id, status, reason=None):
    row = conn.execute("UPDATE orders SET status = %s WHERE order_id = %s AND status = 'PENDING' "
                       "RETURNING order_id, user_id, product_id, quantity, sale_id", (status, order_id)).fetchone()
    if row is None:
        return False
    event = ev.Event(type=outbox.STATUS_EVENT[status], orderId=row[0], userId=row[1], productId=row[2],
                     quantity=row[3], saleId=row[4], reason=reason)
    conn.execute("INSERT INTO outbox (topic, key, payload) VALUES (%s, %s, %s)",
                 (event.topic, event.key, event.to_json().decode()))
    return True


def set_status(conn, order_id, status, reason=None):
    with conn.transaction():
        return set_status_in_two_transactions(conn, order_id, status, reason)


def relay(mark_first: bool = False, wait: bool = True):
    """A relay that never asks for delivery reports: it trusts flush() (when it waits at all) to tell it all."""
    def relay_once(conn, producer, limit=100):
        with conn.transaction():
            rows = conn.execute("SELECT id, topic, key, payload FROM outbox WHERE sent_at IS NULL ORDER BY id "
                                "LIMIT %s FOR UPDATE SKIP LOCKED", (limit,)).fetchall()
            if mark_first:
                conn.execute("UPDATE outbox SET sent_at = now() WHERE id = ANY(%s)", ([r[0] for r in rows],))
        for _, topic, key, payload in rows:
            producer.produce(topic, payload.encode(), key=key)
        if wait and producer.flush(10):
            raise RuntimeError("the broker did not take the whole batch")
        if not mark_first:
            conn.execute("UPDATE outbox SET sent_at = now() WHERE id = ANY(%s)", ([r[0] for r in rows],))
        return len(rows)
    return relay_once


@pytest.mark.parametrize("set_status_, relay_once, saying", [
    (set_status_in_two_transactions, relay(), "must commit together or not at all"),
    (set_status, relay(mark_first=True), "Mark rows sent only once the broker has acknowledged them"),
    (set_status, relay(wait=False), "Mark rows sent only once the broker has acknowledged them"),
    (set_status, relay(), "a failure is reported only to the delivery callback"),
], ids=["two-transactions", "mark-then-publish", "fire-and-forget", "trusts-flush"])
def test_outbox_check_catches(stack, set_status_, relay_once, saying):
    fails(outbox.check, stack, set_status_, relay_once, saying=saying)


def set_status_that_reports_badly(conn, order_id, status, reason=None):
    """Right, until a write fails: then its own error report has a bug (str + exception: a TypeError)."""
    try:
        return set_status(conn, order_id, status, reason)
    except psycopg.Error as error:
        print("could not set the status: " + error)
        raise


def test_outbox_check_lets_a_learners_own_error_show(stack):
    """Only the database error the check provokes is expected; a learner's TypeError must surface, not pass."""
    with pytest.raises(TypeError, match="can only concatenate str"):
        outbox.check(stack, set_status_that_reports_badly, relay())


def test_outbox_check_builds_its_sql_safely_for_any_order_id(stack):
    """Its triggers quote names and values with psycopg.sql: an orderId with a quote in it breaks nothing."""
    from flashsale.adapters import postgres

    outbox.create_outbox(stack)
    with postgres.connect(stack.wired().database_url) as conn:
        ids = outbox.pending_orders(conn, f"o'brien-{uuid.uuid4().hex[:6]}", 3)
        outbox.same_transaction(conn, set_status, ids)


# --- The registry of wrong answers (docs: /work/notes/wrong-answers.md): one rule broken each --------------------


@dataclass(frozen=True)
class WrongAnswer:
    exercise: str  # the notebook's number, "10" … "18"
    name: str  # the test id, a few words: "decr-then-incr"
    breaks: int  # the number of the rule it breaks (one rule each)
    binds: dict[str, str]  # task name in the notebook -> name in this module that replaces it; a task left out keeps
    #                        the solution's code (exercises 14 and 17 have two task cells)


# --- 15 · a read model: sales_per_second(events, sale_id) -> {second: phones} -------------------------------------


def counts_orders_not_phones(events, sale_id):
    """Everything right, but an order counts 1, whatever its quantity: wrong as soon as an order is of two phones."""
    model = {}
    for e in readmodel.first_confirmations(events, sale_id).values():
        model[e.occurredAt[:19]] = model.get(e.occurredAt[:19], 0) + 1
    return model


def drops_an_order(events, sale_id):
    """Forgets one sold order (the same one in any replay order). Dropping every orderId ending in "0" missed
    none of 50 orders in a CI run of 2026-12-02: (15/16)^50, a 4% chance, and the check rightly passed."""
    lost = min(e.orderId for e in events if e.type == ev.ORDER_CONFIRMED and e.saleId == sale_id)
    return readmodel.reference([e for e in events if e.orderId != lost], sale_id)


count_every_confirmation = readmodel.obvious  # the notebook's prediction: right until an order is confirmed twice


def dedupe_by_event_id(events, sale_id):
    """Each event once, by its eventId: a redelivered copy is caught, a confirmation the services made again is not."""
    seen, model = set(), {}
    for e in sorted(events, key=lambda e: e.occurredAt):
        if e.type == ev.ORDER_CONFIRMED and e.saleId == sale_id and e.eventId not in seen:
            seen.add(e.eventId)
            model[e.occurredAt[:19]] = model.get(e.occurredAt[:19], 0) + e.quantity
    return model


def keeps_the_last(events, sale_id):
    """Each order once, but the last confirmation in the list wins: in the log's order, the latest."""
    last = {e.orderId: e for e in events if e.type == ev.ORDER_CONFIRMED and e.saleId == sale_id}
    model = {}
    for e in last.values():
        model[e.occurredAt[:19]] = model.get(e.occurredAt[:19], 0) + e.quantity
    return model


def every_sale(events, sale_id):
    """Right in every way but one: it counts every sale's orders."""
    model = {}
    for e in readmodel.first_confirmations(events).values():
        model[e.occurredAt[:19]] = model.get(e.occurredAt[:19], 0) + e.quantity
    return model


def first_seen(events, sale_id):
    """Each order at the first confirmation in the list: the earliest while the list comes in the log's order."""
    first = {}
    for e in events:
        if e.type == ev.ORDER_CONFIRMED and e.saleId == sale_id:
            first.setdefault(e.orderId, e)
    model = {}
    for e in first.values():
        model[e.occurredAt[:19]] = model.get(e.occurredAt[:19], 0) + e.quantity
    return model


# --- 16 · a shared rate limiter: allow(redis, client, rate, burst, now) -> bool ------------------------------------

BUCKET = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or burst
local at = tonumber(bucket[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', math.max(now, at))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return allowed
"""


def bucket_in_lua(source: str):
    def allow(redis, client, rate, burst, now):
        return bool(redis.register_script(source)(keys=[f"ratelimit:{client}"], args=[rate, burst, now]))
    return allow


BUCKETS: dict = {}


def buckets_in_memory(redis, client, rate, burst, now):
    """The gateway's own RateLimiter, exactly right, in this process's memory: one bucket per gateway."""
    tokens, at = BUCKETS.get(client, (burst, now))
    tokens = min(burst, tokens + max(0, now - at) * rate)
    BUCKETS[client] = (tokens - (tokens >= 1), max(now, at))
    return tokens >= 1


def always(redis, client, rate, burst, now):
    return True


the_gateways_bucket_in_redis = ratelimit.obvious  # the notebook's prediction: RateLimiter's arithmetic in a hash


one_bucket_for_everyone = bucket_in_lua(BUCKET.replace("KEYS[1]", "'ratelimit:everyone'"))
starts_empty = bucket_in_lua(BUCKET.replace("tonumber(bucket[1]) or burst", "tonumber(bucket[1]) or 0"))


def no_cap(redis, client, rate, burst, now):
    key = f"ratelimit:{client}"
    tokens, at = (float(v) if v else None for v in redis.hmget(key, "tokens", "at"))
    tokens = (burst if tokens is None else tokens) + (now - (at or now)) * rate
    redis.hset(key, mapping={"tokens": tokens - (tokens >= 1), "at": now})
    redis.expire(key, math.ceil(burst / rate) + 1)
    return tokens >= 1


whole_seconds_refill = bucket_in_lua(BUCKET.replace("math.max(0, now - at) * rate",
                                                    "math.floor(math.max(0, now - at)) * rate"))
half_a_token_is_enough = bucket_in_lua(BUCKET.replace("if tokens >= 1 then", "if tokens > 0 then"))
refusal_drops_refill = bucket_in_lua(BUCKET.replace(
    "redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', math.max(now, at))",
    "if allowed == 1 then redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', math.max(now, at))\n"
    "else redis.call('HSET', KEYS[1], 'at', math.max(now, at)) end"))  # touched, but the refill not kept
# Each gateway passes its own clock: the last writer's `at` wins, even when that clock is behind.
slow_clock_sets_at_back = bucket_in_lua(BUCKET.replace("'at', math.max(now, at)", "'at', now"))
slow_clock_refills_backwards = bucket_in_lua(BUCKET.replace("math.max(0, now - at)", "(now - at)"))
refuses_when_behind = bucket_in_lua(BUCKET.replace("tokens = math.min(",
                                                   "if now < at then return 0 end\ntokens = math.min("))


def read_then_write(redis, client, rate, burst, now):
    """Exactly the bucket, in Python: read, refill, take, write. Right in one process, wrong in several at once."""
    key = f"ratelimit:{client}"
    tokens, at = (float(v) if v else None for v in redis.hmget(key, "tokens", "at"))
    at = now if at is None else at
    tokens = min(burst, (burst if tokens is None else tokens) + max(0, now - at) * rate)
    redis.hset(key, mapping={"tokens": tokens - (tokens >= 1), "at": max(now, at)})
    redis.expire(key, math.ceil(burst / rate) + 1)
    return tokens >= 1


LOCK = threading.Lock()


def lock_in_one_process(redis, client, rate, burst, now):
    """read_then_write under a lock: no two threads of one gateway at once, any two gateways still."""
    with LOCK:
        return read_then_write(redis, client, rate, burst, now)


no_expire = bucket_in_lua(BUCKET.replace("redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)\n", ""))
expires_a_day_later = bucket_in_lua(BUCKET.replace("math.ceil(burst / rate) + 1", "86400"))
expires_in_a_second = bucket_in_lua(BUCKET.replace("math.ceil(burst / rate) + 1", "1"))


# --- 17 · rename a field: upcast_v3(data) -> dict, to_wire(event) -> dict ------------------------------------------


def only_version_2(data):  # forgets the events of version 1 still in the log
    if data.get("version") == 2:
        return {k: v for k, v in data.items() if k != "userId"} | {"version": 3, "buyerId": data["userId"]}
    return data


def v1_without_price(data):
    """Renames in every older version, but version 1's price is never added."""
    if data.get("version", 1) < 3:
        return {k: v for k, v in data.items() if k != "userId"} | {"version": 3, "buyerId": data["userId"]}
    return data


def keeps_user_id(data):
    """buyerId added beside userId instead of in its place."""
    data = ev.upcast(data)
    if data.get("version") == 2:
        data = {**data, "version": 3, "buyerId": data["userId"]}
    return data


def v3_gets_the_v1_price(data):
    """Version 2 renamed; anything else taken for version 1, version 3 included: its price overwritten."""
    if data.get("version") == 2:
        return {k: v for k, v in data.items() if k != "userId"} | {"version": 3, "buyerId": data["userId"]}
    return ({k: v for k, v in data.items() if k != "userId"}
            | {"version": 3, "buyerId": data.get("userId", data.get("buyerId")), "priceCents": ev.V1_PRICE_CENTS})


def drops_the_reason(data):
    """Built from the fields the author thought of: `reason` and `availableStock` are not among them."""
    if data.get("version") == 3:
        return data
    data = ev.upcast(data)
    fields = ("eventId", "type", "occurredAt", "orderId", "productId", "quantity", "saleId", "priceCents")
    return {"version": 3, "buyerId": data["userId"], **{k: data[k] for k in fields if k in data}}


def upcast_in_place(data):  # pop() renames the field in the caller's dict too
    if "version" not in data:
        data["priceCents"] = ev.V1_PRICE_CENTS
    data["buyerId"], data["version"] = data.pop("userId", data.get("buyerId")), 3
    return data


def wire_without_price(event):
    return {k: v for k, v in event.items() if k != "priceCents"} | {"userId": event["buyerId"]}


def wire_in_place(event):
    event["userId"] = event["buyerId"]
    return event


renamed_in_one_step = renaming.obvious_wire  # the notebook's prediction: no expand, version 2 finds no userId


def contract_too_early(event):  # the old name only: version 2 consumers read it, version 3 readers do not
    return {k: v for k, v in event.items() if k != "buyerId"} | {"userId": event["buyerId"]}


def old_name_another_value(event):
    return {**event, "userId": "anonymous"}


# --- 18 · one transaction per batch: invoice_batch(producer, source, messages, topic) -> int ----------------------


def invoices_every_event(producer, source, messages, topic):
    producer.begin_transaction()
    out = [e.next(ev.INVOICE_ISSUED) for e in invoices.decode(messages)]
    for invoice in out:
        producer.produce(topic, invoice.to_json(), key=invoice.key)
    producer.send_offsets_to_transaction(source.position(source.assignment()), source.consumer_group_metadata())
    producer.commit_transaction()
    return len(out)


def keyed_by_buyer(producer, source, messages, topic):
    producer.begin_transaction()
    out = invoices.invoices(invoices.decode(messages))
    for invoice in out:
        producer.produce(topic, invoice.to_json(), key=invoice.userId)
    producer.send_offsets_to_transaction(source.position(source.assignment()), source.consumer_group_metadata())
    producer.commit_transaction()
    return len(out)


def offsets_by_the_consumer(producer, source, messages, topic):  # committed outside the transaction, before it
    producer.begin_transaction()
    out = invoices.invoices(invoices.decode(messages))
    for invoice in out:
        producer.produce(topic, invoice.to_json(), key=invoice.key)
    source.commit(asynchronous=False)
    producer.commit_transaction()
    return len(out)


consumer_commits_after = eos.obvious  # the notebook's prediction: right at every kill before a commit


def no_offsets(producer, source, messages, topic):  # the invoices in a transaction, the offsets nowhere
    producer.begin_transaction()
    out = invoices.invoices(invoices.decode(messages))
    for invoice in out:
        producer.produce(topic, invoice.to_json(), key=invoice.key)
    producer.commit_transaction()
    return len(out)


def offsets_of_the_last_messages(producer, source, messages, topic):
    """The offset of the last message read in each partition, not the next one to read: off by one."""
    last = {(m.topic(), m.partition()): m.offset() for m in messages}
    producer.begin_transaction()
    out = invoices.invoices(invoices.decode(messages))
    for invoice in out:
        producer.produce(topic, invoice.to_json(), key=invoice.key)
    producer.send_offsets_to_transaction([TopicPartition(t, p, o) for (t, p), o in last.items()],
                                         source.consumer_group_metadata())
    producer.commit_transaction()
    return len(out)


def two_transactions(producer, source, messages, topic):
    """The invoices committed, then the offsets in a transaction of their own."""
    producer.begin_transaction()
    out = invoices.invoices(invoices.decode(messages))
    for invoice in out:
        producer.produce(topic, invoice.to_json(), key=invoice.key)
    producer.commit_transaction()
    producer.begin_transaction()
    producer.send_offsets_to_transaction(source.position(source.assignment()), source.consumer_group_metadata())
    producer.commit_transaction()
    return len(out)


def no_transaction(producer, source, messages, topic):
    out = invoices.invoices(invoices.decode(messages))
    for invoice in out:
        producer.produce(topic, invoice.to_json(), key=invoice.key)
    producer.flush()
    source.commit(asynchronous=False)
    return len(out)


def returns_the_batch_size(producer, source, messages, topic):
    producer.begin_transaction()
    for invoice in invoices.invoices(invoices.decode(messages)):
        producer.produce(topic, invoice.to_json(), key=invoice.key)
    producer.send_offsets_to_transaction(source.position(source.assignment()), source.consumer_group_metadata())
    producer.commit_transaction()
    return len(messages)


WRONG: list[WrongAnswer] = [
    WrongAnswer("15", "counts-orders-not-phones", 1, {"sales_per_second": "counts_orders_not_phones"}),
    WrongAnswer("15", "drops-orders", 1, {"sales_per_second": "drops_an_order"}),
    WrongAnswer("15", "no-dedupe", 2, {"sales_per_second": "count_every_confirmation"}),
    WrongAnswer("15", "dedupe-by-event-id", 2, {"sales_per_second": "dedupe_by_event_id"}),
    WrongAnswer("15", "keeps-the-last", 3, {"sales_per_second": "keeps_the_last"}),
    WrongAnswer("15", "every-sale", 4, {"sales_per_second": "every_sale"}),
    WrongAnswer("15", "first-seen", 5, {"sales_per_second": "first_seen"}),
    WrongAnswer("16", "buckets-in-memory", 1, {"allow": "buckets_in_memory"}),
    WrongAnswer("16", "one-bucket-for-everyone", 1, {"allow": "one_bucket_for_everyone"}),
    WrongAnswer("16", "always", 1, {"allow": "always"}),
    WrongAnswer("16", "starts-empty", 2, {"allow": "starts_empty"}),
    WrongAnswer("16", "no-cap", 3, {"allow": "no_cap"}),
    WrongAnswer("16", "whole-seconds-refill", 3, {"allow": "whole_seconds_refill"}),
    WrongAnswer("16", "half-a-token-is-enough", 4, {"allow": "half_a_token_is_enough"}),
    WrongAnswer("16", "refusal-drops-refill", 4, {"allow": "refusal_drops_refill"}),
    WrongAnswer("16", "slow-clock-sets-at-back", 5, {"allow": "slow_clock_sets_at_back"}),
    WrongAnswer("16", "slow-clock-refills-backwards", 5, {"allow": "slow_clock_refills_backwards"}),
    WrongAnswer("16", "refuses-when-behind", 5, {"allow": "refuses_when_behind"}),
    WrongAnswer("16", "the-gateways-bucket-in-redis", 5, {"allow": "the_gateways_bucket_in_redis"}),
    WrongAnswer("16", "read-then-write", 6, {"allow": "read_then_write"}),
    WrongAnswer("16", "lock-in-one-process", 6, {"allow": "lock_in_one_process"}),
    WrongAnswer("16", "no-expire", 7, {"allow": "no_expire"}),
    WrongAnswer("16", "expires-a-day-later", 7, {"allow": "expires_a_day_later"}),
    WrongAnswer("16", "expires-in-a-second", 7, {"allow": "expires_in_a_second"}),
    WrongAnswer("17", "forgets-version-1", 1, {"upcast_v3": "only_version_2"}),
    WrongAnswer("17", "v1-without-price", 1, {"upcast_v3": "v1_without_price"}),
    WrongAnswer("17", "keeps-userId", 2, {"upcast_v3": "keeps_user_id"}),
    WrongAnswer("17", "v3-gets-the-v1-price", 3, {"upcast_v3": "v3_gets_the_v1_price"}),
    WrongAnswer("17", "drops-the-reason", 4, {"upcast_v3": "drops_the_reason"}),
    WrongAnswer("17", "wire-without-price", 4, {"to_wire": "wire_without_price"}),
    WrongAnswer("17", "mutates-its-input", 5, {"upcast_v3": "upcast_in_place"}),
    WrongAnswer("17", "wire-in-place", 5, {"to_wire": "wire_in_place"}),
    WrongAnswer("17", "rename-without-expand", 6, {"to_wire": "renamed_in_one_step"}),
    WrongAnswer("17", "contract-too-early", 6, {"to_wire": "contract_too_early"}),
    WrongAnswer("17", "old-name-another-value", 6, {"to_wire": "old_name_another_value"}),
    WrongAnswer("18", "invoices-every-event", 1, {"invoice_batch": "invoices_every_event"}),
    WrongAnswer("18", "keyed-by-buyer", 1, {"invoice_batch": "keyed_by_buyer"}),
    WrongAnswer("18", "offsets-outside-the-transaction", 2, {"invoice_batch": "offsets_by_the_consumer"}),
    WrongAnswer("18", "consumer-commits-after", 2, {"invoice_batch": "consumer_commits_after"}),
    WrongAnswer("18", "no-offsets", 2, {"invoice_batch": "no_offsets"}),
    WrongAnswer("18", "offsets-of-the-last-messages", 2, {"invoice_batch": "offsets_of_the_last_messages"}),
    WrongAnswer("18", "two-transactions", 3, {"invoice_batch": "two_transactions"}),
    WrongAnswer("18", "no-transaction", 3, {"invoice_batch": "no_transaction"}),
    WrongAnswer("18", "returns-the-batch-size", 4, {"invoice_batch": "returns_the_batch_size"}),
]


def solution(exercise: str) -> dict:
    """What the solution notebook's task cells define (after its imports): every task solved."""
    path = next((ROOT / "notebooks" / "solutions").glob(f"{exercise}-*.ipynb"))
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    defined: dict = {}
    exec("\n".join(line for line in code[0].source.splitlines() if line.startswith(("from ", "import "))), defined)
    for cell in code:
        if cell.metadata.get("flashsale") == "task":
            exec(cell.source, defined)
    return defined


def answer(wrong: WrongAnswer) -> dict:
    """The solution's tasks, with the wrong answer's bound in place of theirs."""
    return {**solution(wrong.exercise), **{task: globals()[name] for task, name in wrong.binds.items()}}


# How each exercise's check is called with what its task cells define, as its notebook's Check cell calls it.
CHECKS: dict[str, Callable] = {
    "15": lambda stack, tasks: readmodel.check(stack, tasks["sales_per_second"]),
    "16": lambda stack, tasks: ratelimit.check(stack, tasks["allow"]),
    "17": lambda stack, tasks: renaming.check(stack, tasks["upcast_v3"], tasks["to_wire"]),
    "18": lambda stack, tasks: eos.check(stack, tasks["invoice_batch"]),
}
MODULES = {"15": readmodel, "16": ratelimit, "17": renaming, "18": eos}
# Whose checks' outcome does not depend on the broker: exercise 16 asks Redis alone.
BROKER_FREE = {"16"}
# The obvious answer each notebook opens its prediction with, and the step of the check it fails at: the same on
# every broker, which this registry's test shows on both.
OBVIOUS = {("15", "no-dedupe"): "C", ("16", "the-gateways-bucket-in-redis"): "D",
           ("17", "rename-without-expand"): "D", ("18", "consumer-commits-after"): "B"}


def _param(wrong: WrongAnswer):
    return pytest.param(wrong, id=f"{wrong.exercise}-{wrong.name}",
                        marks=[pytest.mark.broker_free] if wrong.exercise in BROKER_FREE else [])


@pytest.mark.parametrize("wrong", [_param(w) for w in WRONG])
def test_each_wrong_answer_fails_its_check_naming_the_rule_it_breaks(stack, wrong: WrongAnswer):
    with pytest.raises(Wrong) as failed:
        CHECKS[wrong.exercise](stack, answer(wrong))
    rule = failed.value.rule
    assert rule is not None and rule.number == wrong.breaks, f"expected rule {wrong.breaks}: {failed.value}"
    assert str(failed.value).startswith(f"rule {rule.number} ({rule.text}): ")
    assert MODULES[wrong.exercise].RULES[rule.number - 1] == rule
    if (wrong.exercise, wrong.name) in OBVIOUS:
        assert failed.value.step == OBVIOUS[wrong.exercise, wrong.name], str(failed.value)


@pytest.mark.broker_free
@pytest.mark.parametrize("exercise", sorted(MODULES))
def test_every_rule_has_a_wrong_answer_that_breaks_it(exercise):
    broken = {w.breaks for w in WRONG if w.exercise == exercise}
    assert broken == {rule.number for rule in MODULES[exercise].RULES}
    assert all(w.binds and all(name in globals() for name in w.binds.values()) for w in WRONG)
    assert {e for e, _ in OBVIOUS} == set(MODULES) and all((e, n) in {(w.exercise, w.name) for w in WRONG}
                                                           for e, n in OBVIOUS)


def stated_rules(markdown: str) -> list[str]:
    """The numbered list after "The rules:", each item's lines joined."""
    listed = markdown.split("The rules:", 1)[1].strip().split("\n\n", 1)[0]
    return [" ".join(line.strip() for line in item.splitlines()) for item in re.split(r"^\d+\. ", listed, flags=re.M)
            if item.strip()]


@pytest.mark.broker_free
@pytest.mark.parametrize("exercise", sorted(MODULES))
def test_the_rules_are_stated_alike_in_the_notebook_the_teaching_notes_and_the_check(exercise):
    rules = [rule.text for rule in MODULES[exercise].RULES]
    assert [rule.number for rule in MODULES[exercise].RULES] == list(range(1, len(rules) + 1))
    for folder in ("solutions", "exercises"):
        path = next((ROOT / "notebooks" / folder).glob(f"{exercise}-*.ipynb"))
        cells = nbformat.read(path, as_version=4).cells
        told = [c.source for c in cells if c.cell_type == "markdown" and "The rules:" in c.source]
        assert len(told) == 1 and stated_rules(told[0]) == rules, f"{folder}/{path.name}"
    teaching = (ROOT / "docs" / "teaching.md").read_text().split("## The rules each check holds", 1)[1]
    section = re.split(r"^### ", teaching, flags=re.M)
    mine = [s for s in section if s.startswith(f"{exercise} ")]
    assert len(mine) == 1 and stated_rules(mine[0]) == rules


@pytest.mark.broker_free
@pytest.mark.parametrize("exercise", sorted(MODULES))
def test_the_notebook_lists_the_steps_of_its_check(exercise):
    """The prediction asks which step the obvious answer fails: the Check cell's text names them as the check does."""
    path = next((ROOT / "notebooks" / "solutions").glob(f"{exercise}-*.ipynb"))
    text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
    for letter, what in MODULES[exercise].STEPS.items():
        assert f"**{letter}.** {what}" in " ".join(text.split()), f"step {letter}: {what}"

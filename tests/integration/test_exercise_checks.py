"""The exercises' checks catch the mistakes learners make, and say what is wrong.

A check that passes a wrong answer teaches the wrong lesson. Each test here hands a check a
typical wrong answer (the seed project's, or the obvious one) and expects the check to fail with
a message that names the mistake. The solutions passing is test_exercises.py's business.
"""
import contextlib
import uuid

import psycopg
import pytest
from pydantic import ValidationError

from flashsale import events as ev
from flashsale.lab import versions
from flashsale.lab.exercises import (
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
from flashsale.lab.races import buyers, flash_sale
from flashsale.services import invoices

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


def count_every_confirmation(events, sale_id):
    model = {}
    for e in events:
        if e.type == ev.ORDER_CONFIRMED and e.saleId == sale_id:
            model[e.occurredAt[:19]] = model.get(e.occurredAt[:19], 0) + e.quantity
    return model


def drops_an_order(events, sale_id):
    """Forgets one sold order (the same one in any replay order). Dropping every orderId ending in "0" missed
    none of 50 orders in a CI run of 2026-12-02: (15/16)^50, a 4% chance, and the check rightly passed."""
    lost = min(e.orderId for e in events if e.type == ev.ORDER_CONFIRMED and e.saleId == sale_id)
    return readmodel.reference([e for e in events if e.orderId != lost], sale_id)


def every_sale(events, sale_id):
    return {"all": sum(e.quantity for e in readmodel.first_confirmations(events).values())}


@pytest.mark.parametrize("fold, saying", [
    (count_every_confirmation, "count each orderId once"),
    (drops_an_order, "Count the quantity of every order.confirmed"),
    (every_sale, "count only the events whose saleId is sale_id"),
], ids=["no-dedupe", "drops-orders", "every-sale"])
def test_readmodel_check_catches(stack, fold, saying):
    flash_sale(stack, "gateway", buyers=300, stock=50)
    fails(readmodel.check, stack, fold, saying=saying)


def no_cap(redis, client, rate, burst, now):
    key = f"ratelimit:{client}"
    tokens, at = (float(v) if v else None for v in redis.hmget(key, "tokens", "at"))
    tokens = (burst if tokens is None else tokens) + (now - (at or now)) * rate
    redis.hset(key, mapping={"tokens": tokens - (tokens >= 1), "at": now})
    redis.expire(key, 60)
    return tokens >= 1


@pytest.mark.parametrize("allow, saying", [
    (no_cap, "tokens = min(burst, ...)"),
    (lambda redis, client, rate, burst, now: True, "the 5th request at once"),
], ids=["no-cap", "always"])
def test_ratelimit_check_catches(stack, allow, saying):
    fails(ratelimit.check, stack, allow, saying=saying)


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


@pytest.mark.parametrize("source, saying", [
    (BUCKET.replace("redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)\n", ""), "never expire"),
    # Each gateway passes its own clock: the last writer's `at` wins, even when that clock is behind.
    (BUCKET.replace("'at', math.max(now, at)", "'at', now"), "Never move `at` back"),
    (BUCKET.replace("math.max(0, now - at)", "(now - at)"), "time that runs backwards took tokens away"),
], ids=["no-expire", "slow-clock-sets-at-back", "slow-clock-refills-backwards"])
def test_ratelimit_check_catches_wrong_buckets_in_lua(stack, source, saying):
    fails(ratelimit.check, stack, bucket_in_lua(source), saying=saying)


def upcast_v3(data):
    data = ev.upcast(data)
    if data.get("version") == 2:
        data = {k: v for k, v in data.items() if k != "userId"} | {"version": 3, "buyerId": data["userId"]}
    return data


def upcast_in_place(data):  # pop() renames the field in the caller's dict too
    if "version" not in data:
        data["priceCents"] = ev.V1_PRICE_CENTS
    data["buyerId"], data["version"] = data.pop("userId", data.get("buyerId")), 3
    return data


def only_version_2(data):  # forgets the events of version 1 still in the log
    if data.get("version") == 2:
        return {k: v for k, v in data.items() if k != "userId"} | {"version": 3, "buyerId": data["userId"]}
    return data


def both_names(event):
    return {**event, "userId": event["buyerId"]}


@pytest.mark.parametrize("upcast, to_wire, saying", [
    (upcast_in_place, both_names, "changed the event it was given"),
    (only_version_2, both_names, "a version 1 "),
    (upcast_v3, lambda event: dict(event), "dead-lettered"),  # renamed in one step: no expand
], ids=["mutates-its-input", "forgets-version-1", "rename-without-expand"])
def test_renaming_check_catches(stack, upcast, to_wire, saying):
    stack.reset(stock=100)
    versions.old_gateway(stack, buyers=10)
    buyers(stack, "gateway", 10, progress=False)
    fails(renaming.check, stack, upcast, to_wire, saying=saying)


def test_renaming_check_passes_the_solution(stack):
    stack.reset(stock=100)
    versions.old_gateway(stack, buyers=10)
    buyers(stack, "gateway", 10, progress=False)
    renaming.check(stack, upcast_v3, both_names)


def invoice_batch(producer, source, messages, topic):
    producer.begin_transaction()
    out = invoices.invoices(invoices.decode(messages))
    for invoice in out:
        producer.produce(topic, invoice.to_json(), key=invoice.key)
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


def no_offsets(producer, source, messages, topic):  # the invoices in a transaction, the offsets nowhere
    producer.begin_transaction()
    out = invoices.invoices(invoices.decode(messages))
    for invoice in out:
        producer.produce(topic, invoice.to_json(), key=invoice.key)
    producer.commit_transaction()
    return len(out)


@pytest.mark.parametrize("batch, saying", [
    (offsets_by_the_consumer, "have no invoice"),
    (no_offsets, "invoices too many"),
], ids=["offsets-outside-the-transaction", "no-offsets"])
def test_transactions_check_catches(stack, batch, saying):
    flash_sale(stack, "gateway", buyers=200, stock=50)
    fails(eos.check, stack, batch, saying=saying)


def test_transactions_check_passes_the_solution(stack):
    flash_sale(stack, "gateway", buyers=200, stock=50)
    eos.check(stack, invoice_batch)

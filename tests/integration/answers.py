"""The wrong answers of exercises 10 to 14, each shaped as a task cell's own definition, each breaking one rule;
and a few right answers that are not the solution, which the checks must pass.

`test_exercise_checks.WRONG` registers them, with the rule each breaks, and that module re-exports every one, so
that `from test_exercise_checks import seed_decr_then_incr as reserve_script` gives a notebook what its task cell
would define. They live here, apart from the tests, because the checks run the learner's code in processes of
their own, as the services do: a child process imports the module of a function it is given by name, and this
one is light (the test module imports every exercise's check, pandas and nbformat among them, ~3 s a child).
"""
import sys
import threading
from collections.abc import Callable

import psycopg
from confluent_kafka import Producer
from pydantic import ValidationError

from flashsale import events as ev
from flashsale.lab.exercises import consumer, limit, outbox, poison, reservation

__all__ = ["announces_a_new_order_every_time", "announces_only_changes", "announces_the_event",
           "announces_unknown_orders", "announces_without_reason", "answers_every_event", "check_then_act",
           "check_then_act_forgetting", "checks_then_inserts", "checks_then_updates", "counts_orders",
           "counts_refusals", "counts_sold_out", "dead_letter_as_text", "dead_letter_without_key",
           "dead_letters_later", "dead_letters_on_its_own_producer", "dead_letters_the_batch", "decode_all",
           "decodes_backwards", "dedupes_outside_the_script", "drops_the_reason", "dual_write", "fire_and_forget",
           "forgets_its_decisions", "guards_only_confirmed", "ignores_limit", "inserts_one_unit", "keyed_by_event",
           "limit_off_by_one", "locks_in_process", "locks_nothing", "mark_then_publish", "moves_cancelled_orders",
           "naive", "never_the_last_unit", "newest_first", "no_check", "one_dead_letter_topic",
           "one_event_per_order", "one_unit", "outbox_on_a_second_connection", "plain_insert",
           "records_but_never_reads", "records_elsewhere", "remembers_decisions_in_memory", "remembers_in_memory",
           "remembers_in_process", "remembers_offsets", "remembers_only_reservations", "retries_refusals",
           "returns_the_decision_alone", "returns_the_stock_before", "saves_once", "seed_decr_then_incr",
           "skips_locked_rows", "skips_the_poison", "stock_above_zero", "stock_above_zero_for_the_limit",
           "takes_one_unit", "takes_one_unit_for_the_limit", "trusts_flush", "two_statements", "unguarded_update",
           "upsert", "without_reason", "writes_for_decided_orders", "writes_on_its_own_connection"]  # what WRONG binds
_SESSION: list = []


def notebooks_stack():
    """The `stack` of the notebook the wrong answer was bound into, or in this module the session's."""
    return getattr(sys.modules["__main__"], "stack", None) or _SESSION[0]


# --- 10 · the idempotent reservation ---------------------------------------------------------------------------------

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


def script(source: str) -> Callable[[], str]:
    """A task cell's `reserve_script`: a function that returns this Lua source."""
    def reserve_script() -> str:
        return source
    return reserve_script


seed_decr_then_incr = reservation.seed_script  # the notebook's own obvious first script: it remembers nothing
records_but_never_reads = script(RESERVE.replace("if decided then return {decided, stock} end\n", ""))
retries_refusals = script(RESERVE.replace("if decided then", "if decided == 'RESERVED' then"))
stock_above_zero = script(RESERVE.replace("stock >= tonumber(ARGV[2])", "stock > 0"))
no_check = script(RESERVE.replace("if stock >= tonumber(ARGV[2]) then", "if true then"))
takes_one_unit = script(RESERVE.replace("redis.call('DECRBY', KEYS[1], ARGV[2])", "redis.call('DECR', KEYS[1])"))
never_the_last_unit = script(RESERVE.replace("stock >= tonumber(ARGV[2])", "stock > tonumber(ARGV[2])"))
# A reservation is remembered, a refusal is not: the answer stays right while the stock is 0.
remembers_only_reservations = script(RESERVE.replace(
    "redis.call('HSET', KEYS[2], ARGV[1], decision)",
    "if decision == 'RESERVED' then redis.call('HSET', KEYS[2], ARGV[1], decision) end"))
# Remembers every decision, and gives it back, but in keys of its own: no other script (a release) finds them.
records_elsewhere = script(RESERVE.replace("redis.call('HGET', KEYS[2], ARGV[1])",
                                           "redis.call('GET', KEYS[2] .. ':' .. ARGV[1])")
                           .replace("redis.call('HSET', KEYS[2], ARGV[1], decision)",
                                    "redis.call('SET', KEYS[2] .. ':' .. ARGV[1], decision)"))
returns_the_decision_alone = script(RESERVE.replace("return {decision, stock}", "return decision"))
returns_the_stock_before = script(RESERVE.replace("stock = redis.call('DECRBY'", "redis.call('DECRBY'"))


# --- 11 · the idempotent order consumer ------------------------------------------------------------------------------

INSERT = ("INSERT INTO orders (order_id, sale_id, user_id, product_id, quantity, status) "
          "VALUES (%s, %s, %s, %s, %s, 'PENDING')")
GUARDED = "UPDATE orders SET status = %s, reason = %s WHERE order_id = %s AND status = 'PENDING'"
FINAL = {ev.STOCK_RESERVED: "CONFIRMED", ev.STOCK_INSUFFICIENT: "CANCELLED"}
ANNOUNCE = {"PENDING": ev.ORDER_SAVED, "CONFIRMED": ev.ORDER_CONFIRMED, "CANCELLED": ev.ORDER_CANCELLED}


def orders_handler(insert: str, update: str, announce_row: bool = True, reason: bool = True,
                   quantity: Callable = lambda event: event.quantity):
    """A handler of the orders table made of these two statements; it announces what the row says (or the event)."""
    def handle(conn, event):
        if event.type == ev.ORDER_CREATED:
            conn.execute(insert, (event.orderId, event.saleId, event.userId, event.productId, quantity(event)))
        elif event.type in FINAL:
            conn.execute(update, (FINAL[event.type], event.reason, event.orderId))
        else:
            return None
        row = conn.execute("SELECT status, reason FROM orders WHERE order_id = %s", (event.orderId,)).fetchone()
        if row is None:
            return None
        if event.type == ev.ORDER_CREATED and row[0] != "PENDING":
            return None
        said = "PENDING" if event.type == ev.ORDER_CREATED else FINAL[event.type]
        return event.next(ANNOUNCE[row[0] if announce_row else said], reason=row[1] if reason else None)
    return handle


IDEMPOTENT_INSERT = INSERT + " ON CONFLICT (order_id) DO NOTHING"
naive = consumer.naive  # the notebook's own obvious handler
plain_insert = orders_handler(INSERT, GUARDED)
upsert = orders_handler(INSERT + " ON CONFLICT (order_id) DO UPDATE SET status = 'PENDING'", GUARDED)
inserts_one_unit = orders_handler(IDEMPOTENT_INSERT, GUARDED, quantity=lambda event: 1)
unguarded_update = orders_handler(IDEMPOTENT_INSERT, GUARDED.replace(" AND status = 'PENDING'", ""))
guards_only_confirmed = orders_handler(IDEMPOTENT_INSERT, GUARDED.replace("status = 'PENDING'",
                                                                          "status <> 'CONFIRMED'"))
announces_the_event = orders_handler(IDEMPOTENT_INSERT, GUARDED, announce_row=False)
announces_without_reason = orders_handler(IDEMPOTENT_INSERT, GUARDED, reason=False)


def drops_the_reason(conn, event):
    """Right, but the update sets the status alone: a cancelled order's reason is not in its row."""
    if event.type in FINAL:
        conn.execute("UPDATE orders SET status = %s WHERE order_id = %s AND status = 'PENDING'",
                     (FINAL[event.type], event.orderId))
        row = conn.execute("SELECT status FROM orders WHERE order_id = %s", (event.orderId,)).fetchone()
        return event.next(ANNOUNCE[row[0]], reason=event.reason) if row else None
    return orders_handler(IDEMPOTENT_INSERT, GUARDED)(conn, event)


def announces_only_changes(conn, event):
    """Announces a change only when its own statement made one (rowcount): a repeated event announces nothing."""
    if event.type == ev.ORDER_CREATED:
        changed = conn.execute(IDEMPOTENT_INSERT,
                               (event.orderId, event.saleId, event.userId, event.productId, event.quantity)).rowcount
        return event.next(ev.ORDER_SAVED) if changed else None
    if event.type in FINAL:
        changed = conn.execute(GUARDED, (FINAL[event.type], event.reason, event.orderId)).rowcount
        return event.next(ANNOUNCE[FINAL[event.type]], reason=event.reason) if changed else None
    return None


def saves_once(conn, event):
    """Right about decisions; announces order.saved only when its insert made the row."""
    if event.type == ev.ORDER_CREATED:
        made = conn.execute(IDEMPOTENT_INSERT + " RETURNING order_id",
                            (event.orderId, event.saleId, event.userId, event.productId, event.quantity)).fetchone()
        return event.next(ev.ORDER_SAVED) if made else None  # the row was there already: "nothing new to say"
    return orders_handler(IDEMPOTENT_INSERT, GUARDED)(conn, event)


def announces_a_new_order_every_time(conn, event):
    """The table's first line taken literally: order.created -> order.saved, whatever the row says."""
    said = orders_handler(IDEMPOTENT_INSERT, GUARDED)(conn, event)
    return event.next(ev.ORDER_SAVED) if event.type == ev.ORDER_CREATED else said


def announces_unknown_orders(conn, event):
    """Right, but a decision about an order with no row is announced as if the row were there."""
    said = orders_handler(IDEMPOTENT_INSERT, GUARDED)(conn, event)
    if said is None and event.type in FINAL:
        return event.next(ANNOUNCE[FINAL[event.type]], reason=event.reason)
    return said


def answers_every_event(conn, event):
    """Right, but announces the row's state for any event of an order it knows: its own announcements too."""
    said = orders_handler(IDEMPOTENT_INSERT, GUARDED)(conn, event)
    if said is None and event.type not in (ev.ORDER_CREATED, *FINAL):
        row = conn.execute("SELECT status, reason FROM orders WHERE order_id = %s", (event.orderId,)).fetchone()
        return event.next(ANNOUNCE[row[0]], reason=row[1]) if row else None
    return said


def _remembers_in_memory():
    """Dedupe by eventId in a set: right as long as no batch ever fails, and the process never restarts."""
    seen = set()
    plain = orders_handler(INSERT, GUARDED)

    def handle(conn, event):
        if event.eventId in seen:
            row = conn.execute("SELECT status, reason FROM orders WHERE order_id = %s", (event.orderId,)).fetchone()
            return event.next(ANNOUNCE[row[0]], reason=row[1]) if row and event.type in FINAL else None
        seen.add(event.eventId)
        return plain(conn, event)
    return handle


def _remembers_decisions_in_memory():
    """The insert is idempotent; decisions are deduped by eventId in a set, which no rollback empties."""
    decided = set()
    right = orders_handler(IDEMPOTENT_INSERT, GUARDED)

    def handle(conn, event):
        if event.type in FINAL and event.eventId in decided:
            row = conn.execute("SELECT status, reason FROM orders WHERE order_id = %s", (event.orderId,)).fetchone()
            return event.next(ANNOUNCE[row[0]], reason=row[1]) if row and row[0] != "PENDING" else None
        if event.type in FINAL:
            decided.add(event.eventId)
        return right(conn, event)
    return handle


remembers_in_memory = _remembers_in_memory()
remembers_decisions_in_memory = _remembers_decisions_in_memory()
_OWN: dict = {}


def writes_on_its_own_connection(conn, event):
    """Right statements, on a connection of its own (autocommit): its writes are not in the batch's transaction."""
    info = conn.info
    key = (info.host, info.port, info.dbname)
    if key not in _OWN:
        _OWN[key] = psycopg.connect(host=info.host, port=info.port, dbname=info.dbname, user=info.user,
                                    password=info.password or None, autocommit=True)
    return orders_handler(IDEMPOTENT_INSERT, GUARDED)(_OWN[key], event)


def checks_then_inserts(conn, event):
    """Is the row there? If not, insert it: two statements, with a gap between them."""
    if event.type == ev.ORDER_CREATED and conn.execute("SELECT 1 FROM orders WHERE order_id = %s",
                                                       (event.orderId,)).fetchone():
        return orders_handler(IDEMPOTENT_INSERT, GUARDED)(conn, event)
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
        now = conn.execute("SELECT status, reason FROM orders WHERE order_id = %s", (event.orderId,)).fetchone()
        return event.next(ANNOUNCE[now[0]], reason=now[1])
    return orders_handler(IDEMPOTENT_INSERT, GUARDED)(conn, event)


# --- 12 · the per-user limit -----------------------------------------------------------------------------------------

LIMIT = """
local decided = redis.call('HGET', KEYS[2], ARGV[1])
if decided then return decided end
local quantity = tonumber(ARGV[3])
local units = tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0')
local stock = tonumber(redis.call('GET', KEYS[1]) or '0')
local decision = 'RESERVED'
if units + quantity > tonumber(ARGV[4]) then
  decision = 'PER_USER_LIMIT'
elseif stock < quantity then
  decision = 'SOLD_OUT'
else
  redis.call('DECRBY', KEYS[1], quantity)
  redis.call('HINCRBY', KEYS[3], ARGV[2], quantity)
end
redis.call('HSET', KEYS[2], ARGV[1], decision)
return decision
"""


def lua(source: str):
    """A task cell's `reserve`: this Lua source, run atomically with the keys and arguments of the real one."""
    def reserve(redis, keys, order_id, user_id, quantity, limit_):
        said = redis.register_script(source)(keys=[keys.stock, keys.decisions, keys.user_units],
                                             args=[order_id, user_id, quantity, limit_])
        return said.decode()
    return reserve


check_then_act = limit.check_then_act  # the notebook's own obvious version: it remembers, but it is not atomic
forgets_its_decisions = lua(LIMIT.replace("if decided then return decided end\n", "")
                            .replace("redis.call('HSET', KEYS[2], ARGV[1], decision)\n", ""))
counts_orders = lua(LIMIT.replace("redis.call('HINCRBY', KEYS[3], ARGV[2], quantity)",
                                  "redis.call('HINCRBY', KEYS[3], ARGV[2], 1)"))
limit_off_by_one = lua(LIMIT.replace("units + quantity > tonumber(ARGV[4])", "units + quantity >= tonumber(ARGV[4])"))
stock_above_zero_for_the_limit = lua(LIMIT.replace("stock < quantity", "stock <= 0"))
takes_one_unit_for_the_limit = lua(LIMIT.replace("redis.call('DECRBY', KEYS[1], quantity)",
                                                 "redis.call('DECR', KEYS[1])"))
counts_sold_out = lua(LIMIT.replace("  decision = 'SOLD_OUT'\n",
                                    "  decision = 'SOLD_OUT'\n  redis.call('HINCRBY', KEYS[3], ARGV[2], quantity)\n"))


def check_then_act_forgetting(redis, keys, order_id, user_id, quantity, limit_):
    """The lab's first version of the obvious one: no memory of decisions, and not atomic either."""
    if int(redis.hget(keys.user_units, user_id) or 0) + quantity > limit_:
        return "PER_USER_LIMIT"
    if int(redis.get(keys.stock) or 0) < quantity:
        return "SOLD_OUT"
    redis.decrby(keys.stock, quantity)
    redis.hincrby(keys.user_units, user_id, quantity)
    return "RESERVED"


def counts_refusals(redis, keys, order_id, user_id, quantity, limit_):
    decided = redis.hget(keys.decisions, order_id)
    if decided:
        return decided.decode()
    if redis.hincrby(keys.user_units, user_id, quantity) > limit_:  # counted before it is decided, never undone
        decision = "PER_USER_LIMIT"
    else:
        decision = "RESERVED" if redis.decrby(keys.stock, quantity) >= 0 else "SOLD_OUT"
    redis.hset(keys.decisions, order_id, decision)
    return decision


_LOCK = threading.Lock()


def locks_in_process(redis, keys, order_id, user_id, quantity, limit_):
    """Check-then-act under a lock: one at a time in this process; the inventory's other processes have theirs."""
    with _LOCK:
        return limit.check_then_act(redis, keys, order_id, user_id, quantity, limit_)


def dedupes_outside_the_script(redis, keys, order_id, user_id, quantity, limit_):
    """The limit and the stock in one script; the orderId looked up before it and recorded after it."""
    decided = redis.hget(keys.decisions, order_id)
    if decided:
        return decided.decode()
    decision = forgets_its_decisions(redis, keys, order_id, user_id, quantity, limit_)
    redis.hset(keys.decisions, order_id, decision)
    return decision


_DECIDED: dict = {}


def remembers_in_process(redis, keys, order_id, user_id, quantity, limit_):
    """Atomic, but the decisions are kept in this process's memory, which no other process shares."""
    if (keys, order_id) not in _DECIDED:
        _DECIDED[keys, order_id] = forgets_its_decisions(redis, keys, order_id, user_id, quantity, limit_)
    return _DECIDED[keys, order_id]


# --- 13 · the poison message -----------------------------------------------------------------------------------------

def decode_all(messages, producer):
    return [ev.Event.model_validate_json(m.value() or b"") for m in messages]


skips_the_poison = poison.skips_the_poison  # the notebook's own obvious answer


def dead_letter(dead_letter_topic=lambda m: ev.dead_letter_topic(m.topic()), value=lambda m: m.value(),
                key=lambda m: m.key()):
    """A decode that dead-letters what does not decode: to this topic, with this value, with this key."""
    def decode_or_dead_letter(messages, producer):
        events = []
        for m in messages:
            try:
                events.append(ev.Event.model_validate_json(m.value() or b""))
            except ValidationError as error:
                producer.produce(dead_letter_topic(m), value(m) if value is not None else str(error).encode(),
                                 key=key(m))
        return events
    return decode_or_dead_letter


dead_letter_as_text = dead_letter(value=lambda m: b"cannot decode: " + (m.value() or b"<none>"))
dead_letter_without_key = dead_letter(key=lambda m: None)
one_dead_letter_topic = dead_letter(dead_letter_topic=lambda m: ev.dead_letter_topic(poison.TOPIC))
_right = dead_letter()


def decodes_backwards(messages, producer):
    return _right(list(reversed(messages)), producer)


def one_event_per_order(messages, producer):
    """Deduplicated by orderId: an order's second event in the batch replaces its first."""
    return list({e.orderId: e for e in _right(messages, producer)}.values())


_DECODED: set = set()


def remembers_offsets(messages, producer):
    """Skips the messages it has decoded before: a failed batch, given again, comes back empty."""
    fresh = [m for m in messages if (m.topic(), m.partition(), m.offset()) not in _DECODED]
    _DECODED.update((m.topic(), m.partition(), m.offset()) for m in messages)
    return _right(fresh, producer)


_LATER: list = []


def dead_letters_later(messages, producer):
    """Collects the batch's dead letters and produces them at its next call: the loop commits in between."""
    for args in _LATER:
        producer.produce(*args[:2], key=args[2])
    _LATER.clear()
    events = []
    for m in messages:
        try:
            events.append(ev.Event.model_validate_json(m.value() or b""))
        except ValidationError:
            _LATER.append((ev.dead_letter_topic(m.topic()), m.value(), m.key()))
    return events


_PRODUCERS: dict = {}


def dead_letters_on_its_own_producer(messages, producer):
    """Right, on a producer of its own, which nobody flushes before the commit."""
    bootstrap = notebooks_stack().wired().kafka_bootstrap_servers
    mine = _PRODUCERS.setdefault(bootstrap, Producer({"bootstrap.servers": bootstrap}))
    return _right(messages, mine)


def dead_letters_the_batch(messages, producer):
    """A batch with a poison message in it goes to the dead-letter topic whole; its good events are handled too."""
    events = _right(messages, producer)
    if len(events) < len(messages):
        for m in messages:
            try:
                ev.Event.model_validate_json(m.value() or b"")
            except ValidationError:
                continue  # dead-lettered already
            producer.produce(ev.dead_letter_topic(m.topic()), m.value(), key=m.key())
    return events


# --- 14 · the transactional outbox -----------------------------------------------------------------------------------

def _status_event(conn, order_id, status, reason, change=None):
    row = conn.execute("SELECT order_id, user_id, product_id, quantity, sale_id FROM orders WHERE order_id = %s",
                       (order_id,)).fetchone()
    fields = {"orderId": row[0], "userId": row[1], "productId": row[2], "quantity": row[3], "saleId": row[4],
              "reason": reason, **(change or {})}
    return ev.Event(type=outbox.STATUS_EVENT[status], **fields)


def status_setter(key=lambda event: event.key, guard="status = 'PENDING'", row_anyway=False, **change):
    """A set_status in one transaction, with this key, this guard, and these changes to the event."""
    def set_status(conn, order_id, status, reason=None):
        with conn.transaction():
            moved = conn.execute(f"UPDATE orders SET status = %s, reason = %s WHERE order_id = %s AND {guard}",
                                 (status, reason, order_id)).rowcount
            if not moved and not row_anyway:
                return False
            event = _status_event(conn, order_id, status, reason, change)
            conn.execute("INSERT INTO outbox (topic, key, payload) VALUES (%s, %s, %s)",
                         (event.topic, key(event), event.to_json().decode()))
        return True
    return set_status


two_statements = outbox.two_statements  # the notebook's own obvious set_status
keyed_by_event = status_setter(key=lambda event: event.eventId)
one_unit = status_setter(quantity=1)
without_reason = status_setter(reason=None)
writes_for_decided_orders = status_setter(row_anyway=True)
moves_cancelled_orders = status_setter(guard="status <> 'CONFIRMED'")
right_status = status_setter()


def outbox_on_a_second_connection(conn, order_id, status, reason=None):
    """The update on the connection given, the outbox row on a connection of its own: two transactions."""
    with conn.transaction():
        if not conn.execute("UPDATE orders SET status = %s, reason = %s WHERE order_id = %s AND status = 'PENDING'",
                            (status, reason, order_id)).rowcount:
            return False
        event = _status_event(conn, order_id, status, reason)
        info = conn.info
        with psycopg.connect(host=info.host, port=info.port, dbname=info.dbname, user=info.user,
                             password=info.password or None, autocommit=True) as other:
            other.execute("INSERT INTO outbox (topic, key, payload) VALUES (%s, %s, %s)",
                          (event.topic, event.key, event.to_json().decode()))
    return True


def dual_write(conn, order_id, status, reason=None):
    """The outbox row, and the event published at once too: the dual write the outbox replaces."""
    if not right_status(conn, order_id, status, reason):
        return False
    bootstrap = notebooks_stack().wired().kafka_bootstrap_servers
    producer = _PRODUCERS.setdefault(bootstrap, Producer({"bootstrap.servers": bootstrap}))
    event = _status_event(conn, order_id, status, reason)
    producer.produce(event.topic, event.to_json(), key=event.key)
    producer.flush(10)
    return True


SELECT = "SELECT id, topic, key, payload FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT %s FOR UPDATE"


def relayer(select: str = SELECT, mark_first: bool = False, wait: bool = True, callbacks: bool = True,
            limit_rows: bool = True):
    """A relay in one transaction that reads with this SELECT, waits for the broker or not, reads the delivery
    reports or trusts flush() alone, and marks the rows sent once the broker has them; or (`mark_first`) marks them
    first, in a transaction of their own that commits before it publishes."""
    def publish(producer, rows):
        failures: list = []
        for _, topic, key, payload in rows:
            producer.produce(topic, payload.encode(), key=key,
                             on_delivery=(lambda err, msg: err and failures.append(err)) if callbacks else None)
        if wait and (producer.flush(10) or failures):
            raise RuntimeError(f"the broker did not take the whole batch: {failures[:1]}")

    def relay_once(conn, producer, limit=100):
        with conn.transaction():
            rows = conn.execute(select, (limit if limit_rows else 1_000_000,)).fetchall()
            if rows and mark_first:
                conn.execute("UPDATE outbox SET sent_at = now() WHERE id = ANY(%s)", ([r[0] for r in rows],))
            elif rows:
                publish(producer, rows)
                conn.execute("UPDATE outbox SET sent_at = now() WHERE id = ANY(%s)", ([r[0] for r in rows],))
        if rows and mark_first:
            publish(producer, rows)
        return len(rows)
    return relay_once


ignores_limit = relayer(limit_rows=False)
newest_first = relayer(select=SELECT.replace("ORDER BY id", "ORDER BY id DESC"))
fire_and_forget = relayer(wait=False)
mark_then_publish = relayer(mark_first=True)
trusts_flush = relayer(callbacks=False)
skips_locked_rows = relayer(select=SELECT + " SKIP LOCKED")
locks_nothing = relayer(select=SELECT.replace(" FOR UPDATE", ""))


def set_status_that_reports_badly(conn, order_id, status, reason=None):
    """Right, until a write fails: then its own error report has a bug (str + exception: a TypeError)."""
    try:
        return right_status(conn, order_id, status, reason)
    except psycopg.Error as error:
        print("could not set the status: " + error)
        raise


# --- right answers that are not the solution: a check that refuses one teaches a wrong lesson too -----------------

def reserve_with_watch(redis, keys, order_id, user_id, quantity, limit_):
    """Optimistic locking: WATCH the keys, read, decide, and write in MULTI/EXEC; again if another wrote first."""
    from redis.exceptions import WatchError

    while True:
        with redis.pipeline() as pipe:
            try:
                pipe.watch(keys.decisions, keys.user_units, keys.stock)
                decided = pipe.hget(keys.decisions, order_id)
                if decided:
                    return decided.decode()
                units, stock = int(pipe.hget(keys.user_units, user_id) or 0), int(pipe.get(keys.stock) or 0)
                decision = ("PER_USER_LIMIT" if units + quantity > limit_ else "SOLD_OUT" if stock < quantity
                            else "RESERVED")
                pipe.multi()
                if decision == "RESERVED":
                    pipe.decrby(keys.stock, quantity)
                    pipe.hincrby(keys.user_units, user_id, quantity)
                pipe.hset(keys.decisions, order_id, decision)
                pipe.execute()
                return decision
            except WatchError:
                continue


def handle_with_row_locks(conn, event):
    """Lock the row as it is read (SELECT ... FOR UPDATE), then decide in Python: the other right way."""
    if event.type == ev.ORDER_CREATED:
        conn.execute(IDEMPOTENT_INSERT, (event.orderId, event.saleId, event.userId, event.productId, event.quantity))
    elif event.type in FINAL:
        row = conn.execute("SELECT status FROM orders WHERE order_id = %s FOR UPDATE", (event.orderId,)).fetchone()
        if row is not None and row[0] == "PENDING":
            conn.execute("UPDATE orders SET status = %s, reason = %s WHERE order_id = %s",
                         (FINAL[event.type], event.reason, event.orderId))
    else:
        return None
    row = conn.execute("SELECT status, reason FROM orders WHERE order_id = %s", (event.orderId,)).fetchone()
    if row is None or (event.type == ev.ORDER_CREATED and row[0] != "PENDING"):
        return None
    return event.next(ANNOUNCE[row[0]], reason=row[1])


relay_that_gives_way = relayer(select=SELECT + " NOWAIT")  # a second relay at once fails, and publishes nothing

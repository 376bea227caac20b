"""Exercise 11: the order consumer, idempotent under redelivery.

The learner writes `handle(conn, event) -> Event | None`: apply one event to the real
`orders` table, return the event that announces the row's state. The check first
delivers events by hand, against the real PostgreSQL: each kind once (a multi-unit order
among them); each kind again after its batch rolled back; each again, late and out of
turn, contrary decisions in both directions; then twice at once, in two processes of
their own (as two consumers during a rebalance), the first transaction held open until
the second waits for one of its locks, so that a check-then-act race happens every time.

Then the learner's handler *is* the order service: two processes of their own consume the
real topics as group `exercise11-orders` (the notebook's stack runs no order service),
between the real gateway and inventory, while 1,000 buyers buy one or two phones each. The
check kills (SIGKILL) a process at six points it chooses by batch, not by time: after the
database commit and before the publish (the announcements of a committed batch lost),
after the publish and before the offsets' commit (the batch delivered again), and after
that commit; then it restarts it. Each partition is taken as the services take it
(`kafka.member`, `kafka.ownership`): a group member on Apache Kafka, by number on tansu.

A failure of an event's first delivery (a SQL error, say) shows as it is; only a failure
on a repeated, late or concurrent delivery is reported as the rule it breaks.
"""
import asyncio
import contextlib
import queue
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from flashsale import events as ev
from flashsale.adapters import kafka, postgres
from flashsale.lab.checks import invariants, unsettled
from flashsale.lab.exercises import Rule, Wrong, expect, run_id, short, step
from flashsale.lab.exercises.log import ends, read_since
from flashsale.lab.exercises.processes import SPAWN, ChildFailed, die, failure, pack, start, unpack
from flashsale.lab.load import swarm
from flashsale.settings import Settings
from flashsale.stack.processes import alive

if TYPE_CHECKING:
    from flashsale.stack.control import Stack

GROUP = "exercise11-orders"
NO_SALE = 2**31 - 1  # the hand-made orders belong to no sale, so they count in none
STATE = {ev.ORDER_SAVED: "PENDING", ev.ORDER_CONFIRMED: "CONFIRMED", ev.ORDER_CANCELLED: "CANCELLED"}
DECIDES = {ev.STOCK_RESERVED: "CONFIRMED", ev.STOCK_INSUFFICIENT: "CANCELLED"}
RULES = (
    Rule(1, "`order.created`: insert the `PENDING` row with the event's `order_id`, `sale_id`, `user_id`, "
            "`product_id` and `quantity`, unless the order has a row already; a row that is there stays as it is."),
    Rule(2, "`inventory.reserved` / `inventory.insufficient`: move the row to `CONFIRMED` / `CANCELLED`, with the "
            "event's `reason`, only if it is `PENDING`."),
    Rule(3, "Otherwise return the event that announces what the row says now: `order.saved` while it is `PENDING`, "
            "`order.confirmed` or `order.cancelled` (with the row's `reason`) once decided, however often the "
            "event comes: its first announcement may have been lost in a crash between the commit and the publish."),
    Rule(4, "Return `None` for an `order.created` whose row is already decided, for a decision about an order with "
            "no row, and for any other event."),
    Rule(5, "The rows are your only memory, written through `conn`, in the batch's transaction: a batch can fail "
            "after your handler ran, roll back, and come again."),
    Rule(6, "Two consumers may handle the same order at the same moment (during a rebalance, in two processes): "
            "each step must hold even while another transaction does the same step."),
)
INSERTS, MOVES, ANNOUNCES, NOTHING, ROWS_ONLY, AT_ONCE = RULES
STEPS = {
    "A": "each kind of event once, in turn",
    "B": "each kind again after its batch failed and rolled back",
    "C": "each kind again, late and out of turn, contrary decisions both ways, and one for an order never created",
    "D": "the same order twice at once, in two processes",
    "E": "your handler as the order service, in two processes, killed after each commit",
}
CRASHES = ("after the database commit, before the publish", "after the publish, before the offsets' commit",
           "after the offsets' commit")


def naive(conn, event: ev.Event) -> ev.Event | None:
    """The obvious handler, and the subject of the notebook's prediction: an insert, an update, and the event
    that each asked for."""
    if event.type == ev.ORDER_CREATED:
        conn.execute("INSERT INTO orders (order_id, sale_id, user_id, product_id, quantity, status) "
                     "VALUES (%s, %s, %s, %s, %s, 'PENDING')",
                     (event.orderId, event.saleId, event.userId, event.productId, event.quantity))
        return event.next(ev.ORDER_SAVED)
    if event.type in DECIDES:
        conn.execute("UPDATE orders SET status = %s, reason = %s, updated_at = now() WHERE order_id = %s",
                     (DECIDES[event.type], event.reason, event.orderId))
        return event.next(ev.ORDER_CONFIRMED if event.type == ev.STOCK_RESERVED else ev.ORDER_CANCELLED,
                          reason=event.reason)
    return None


def check(stack: "Stack", handle, buyers: int = 1000, stock: int = 100) -> None:
    settings = stack.wired()
    by_hand(settings.database_url, handle, run_id())
    with step("E", STEPS["E"]):
        as_the_order_service(stack, handle, buyers, stock)
    print("All checks passed: compare with flashsale.services.orders.handle, which does the same for a whole batch.")


def by_hand(database_url: str, handle, run: str) -> None:
    """Steps A to D: the events delivered one by one, against the real PostgreSQL."""
    with postgres.connect(database_url) as conn:
        with step("A", STEPS["A"]):
            once(conn, handle, run)
        with step("B", STEPS["B"]):
            after_a_rollback(conn, handle, run)
        with step("C", STEPS["C"]):
            again_late_and_out_of_turn(conn, handle, run)
    with step("D", STEPS["D"]):
        at_once(database_url, handle, run)


def once(conn, handle, run: str) -> None:
    two = order_created(f"ex11-{run}-two", quantity=2)
    said = deliver(conn, handle, two, "the first order.created")
    expect(row(conn, two) is not None, f"after order.created ({_order(two)}) there is no row for it", INSERTS)
    expect(fields(conn, two) == _fields(two), f"after order.created the row must hold the event's fields: "
           f"{_fields(two)}; it holds {fields(conn, two)}", INSERTS)
    announced(said, "PENDING", None, "a new PENDING row is announced with order.saved (the inventory waits for it)")
    said = deliver(conn, handle, two.next(ev.STOCK_RESERVED, availableStock=98), "the first inventory.reserved")
    moved(conn, two, "CONFIRMED", None, "inventory.reserved for a PENDING order")
    announced(said, "CONFIRMED", None, "a confirmed row is announced with order.confirmed")

    refused = order_created(f"ex11-{run}-refused")
    deliver(conn, handle, refused, "order.created")
    said = deliver(conn, handle, refused.next(ev.STOCK_INSUFFICIENT, reason="SOLD_OUT", availableStock=0),
                   "the first inventory.insufficient")
    moved(conn, refused, "CANCELLED", "SOLD_OUT", "inventory.insufficient (reason SOLD_OUT) for a PENDING order")
    announced(said, "CANCELLED", "SOLD_OUT", "a cancelled row is announced with order.cancelled, and its reason")

    for other in (two.next(ev.ORDER_SAVED), two.next(ev.ORDER_CONFIRMED), refused.next(ev.ORDER_CANCELLED,
                                                                                      reason="SOLD_OUT")):
        before = row(conn, other)
        said = deliver(conn, handle, other, f"{other.type} (the service reads its own announcements too)")
        expect(said is None and row(conn, other) == before, f"{other.type} is not an event the handler acts on (the "
               "service reads order.events, where it writes its own announcements): it must change nothing and "
               f"return None; your handler returned {_type(said)}"
               + (f" and the row went {before} -> {row(conn, other)}" if row(conn, other) != before else ""), NOTHING)


def after_a_rollback(conn, handle, run: str) -> None:
    """Each kind of event in a batch that fails after the handler ran: nothing of it may stay; then it comes again."""
    again = order_created(f"ex11-{run}-again")
    deliver(conn, handle, again, "order.created in a batch that then fails", rollback=True)
    expect(row(conn, again) is None, "your handler's order.created was rolled back with its batch, yet the row is "
           f"there: {row(conn, again)}. Write through the `conn` you are given, inside the batch's transaction, so "
           "that a failed batch leaves nothing behind", ROWS_ONLY)
    said = deliver(conn, handle, again, "order.created delivered again after its batch failed", ROWS_ONLY)
    expect(row(conn, again) == ("PENDING", None) and announces(said) == "PENDING", "a batch failed after your "
           "handler had run (another event of it failed; its transaction rolled back), and the batch came again: "
           f"the order's row is {row(conn, again)} and your handler returned {_type(said)}, so the order is lost. "
           "Your handler remembered the event outside the database (in memory?), where no rollback undoes it: let "
           "the rows be the memory, they commit or roll back with the batch", ROWS_ONLY)

    for decision, status, reason in ((ev.STOCK_RESERVED, "CONFIRMED", None),
                                     (ev.STOCK_INSUFFICIENT, "CANCELLED", "PAYMENT_FAILED")):
        order = order_created(f"ex11-{run}-rolled-{status.lower()}")
        deliver(conn, handle, order, "order.created")
        event = order.next(decision, reason=reason, availableStock=0)
        deliver(conn, handle, event, f"{decision} in a batch that then fails", rollback=True)
        expect(row(conn, order) == ("PENDING", None), f"your handler's {decision} was rolled back with its batch, yet "
               f"the row is {row(conn, order)}: write through the `conn` you are given, inside the batch's "
               "transaction", ROWS_ONLY)
        said = deliver(conn, handle, event, f"{decision} delivered again after its batch failed", ROWS_ONLY)
        expect(row(conn, order) == (status, reason) and announces(said) == status, f"{decision} came again after "
               f"its batch failed and rolled back: the row is {row(conn, order)} and your handler returned "
               f"{_type(said)}; it must be {status} and announced. Your handler remembered the event outside the "
               "database, where no rollback undoes it: let the rows be the memory", ROWS_ONLY)


def again_late_and_out_of_turn(conn, handle, run: str) -> None:
    order = order_created(f"ex11-{run}-late")
    deliver(conn, handle, order, "the first order.created")
    said = deliver(conn, handle, order, "order.created delivered a second time", INSERTS)
    expect(_count(conn, order) == 1 and row(conn, order) == ("PENDING", None), "order.created delivered twice must "
           f"leave one PENDING row; it left {_count(conn, order)} rows, {row(conn, order)}", INSERTS)
    announced(said, "PENDING", None, "order.created delivered again while the row is PENDING must announce "
              "order.saved again: a crash after the first commit and before its publish lost the first "
              "announcement, and the inventory decides only once it hears of the order")

    reserved = order.next(ev.STOCK_RESERVED, availableStock=9)
    deliver(conn, handle, reserved, "the first inventory.reserved")
    said = deliver(conn, handle, reserved, "inventory.reserved delivered a second time", MOVES)
    announced(said, "CONFIRMED", None, "inventory.reserved delivered a second time must announce the row again, "
              "order.confirmed: a crash after the batch committed and before it published delivers the batch again, "
              "and this is the only chance left to announce it")
    contrary(conn, handle, order, order.next(ev.STOCK_INSUFFICIENT, reason="SOLD_OUT", availableStock=0),
             ("CONFIRMED", None))

    refused = order_created(f"ex11-{run}-late-refused")
    deliver(conn, handle, refused, "the first order.created")
    insufficient = refused.next(ev.STOCK_INSUFFICIENT, reason="PER_USER_LIMIT", availableStock=5)
    deliver(conn, handle, insufficient, "the first inventory.insufficient")
    said = deliver(conn, handle, insufficient, "inventory.insufficient delivered a second time", MOVES)
    announced(said, "CANCELLED", "PER_USER_LIMIT", "inventory.insufficient delivered a second time must announce "
              "the row again, order.cancelled with its reason")
    contrary(conn, handle, refused, refused.next(ev.STOCK_RESERVED, availableStock=4), ("CANCELLED", "PER_USER_LIMIT"))

    said = deliver(conn, handle, order, "order.created after the decision", INSERTS)
    expect(row(conn, order) == ("CONFIRMED", None), "a redelivered order.created moved a CONFIRMED order to "
           f"{row(conn, order)}: an insert that finds the row must do nothing (ON CONFLICT DO NOTHING)", INSERTS)
    expect(said is None, "after the decision, a redelivered order.created must return None (the inventory has "
           f"decided: do not ask it again); your handler returned {_type(said)}", NOTHING)

    ghost = order_created(f"ex11-{run}-ghost")
    for decision in (ghost.next(ev.STOCK_RESERVED, availableStock=1),
                     ghost.next(ev.STOCK_INSUFFICIENT, reason="SOLD_OUT", availableStock=0)):
        said = deliver(conn, handle, decision, f"{decision.type} for an order never created", MOVES)
        expect(_count(conn, ghost) == 0, f"{decision.type} for an order never created made a row: a decision only "
               "moves a row that is there", MOVES)
        expect(said is None, f"{decision.type} for an order never created must announce nothing; your handler "
               f"returned {_type(said)}", NOTHING)


def contrary(conn, handle, order: ev.Event, event: ev.Event, decided: tuple[str, str | None]) -> None:
    """A decision against the one already taken: nothing moves, and the row's own state is announced again."""
    said = deliver(conn, handle, event, f"a late {event.type} for a {decided[0]} order", MOVES)
    expect(row(conn, order) == decided, f"a late {event.type} moved an order that was already decided: "
           f"{decided} -> {row(conn, order)}. Only a PENDING row may move (UPDATE ... WHERE status = 'PENDING'), "
           "whichever decision comes first", MOVES)
    announced(said, decided[0], decided[1], f"a late {event.type} for a {decided[0]} order must announce what the "
              "row says, not what the event asked for")


def at_once(database_url: str, handle, run: str) -> None:
    """Two consumers, two processes, the same order at the same time: as during a rebalance, when the member that
    lost a partition is still finishing its batch while the new owner starts it again. The race is made to happen
    every time: the first delivery's transaction stays open until the second waits for one of its locks (or is
    done)."""
    packed = pack(handle, "handler", AT_ONCE)
    with postgres.connect(database_url) as conn, Consumers(packed, database_url, run) as consumers:
        order = order_created(f"ex11-{run}-both")
        (first, second), error = consumers.race(order, order)
        expect(error is None, "the same order.created, handled by two consumers at once, failed on the second with "
               f"{error}. A check (SELECT: is it there?) and then an act (INSERT) leave a gap in which the other "
               "consumer commits: let one statement check and act (INSERT ... ON CONFLICT DO NOTHING)", AT_ONCE)
        expect(_count(conn, order) == 1 and row(conn, order) == ("PENDING", None), "the same order.created, handled "
               f"by two consumers at once, left {_count(conn, order)} rows, {row(conn, order)}", AT_ONCE)
        expect(announces(first) == announces(second) == "PENDING", "the same order.created, handled by two consumers "
               f"at once, was announced as {_type(first)} and {_type(second)}: both must announce order.saved",
               AT_ONCE)

        decide_at_once(conn, consumers, order, order.next(ev.STOCK_RESERVED, availableStock=9),
                       order.next(ev.STOCK_INSUFFICIENT, reason="SOLD_OUT", availableStock=0), ("CONFIRMED", None))
        refused = order_created(f"ex11-{run}-both-refused")
        deliver(conn, handle, refused, "order.created")
        decide_at_once(conn, consumers, refused, refused.next(ev.STOCK_INSUFFICIENT, reason="SOLD_OUT",
                                                              availableStock=0),
                       refused.next(ev.STOCK_RESERVED, availableStock=3), ("CANCELLED", "SOLD_OUT"))


def decide_at_once(conn, consumers: "Consumers", order: ev.Event, wins: ev.Event, loses: ev.Event,
                   state: tuple[str, str | None]) -> None:
    """Two contrary decisions in two consumers at once, `wins` first: `wins` holds, and both announce it."""
    (first, second), error = consumers.race(wins, loses)
    expect(error is None, f"two decisions about one order at once, {wins.type} then {loses.type}: the second failed "
           f"with {error}. Events come late and out of turn, and a handler that fails on one stops its partition",
           AT_ONCE)
    now = row(conn, order)
    expect(now == state, f"two decisions about one order at once: {wins.type} moved the row to {state[0]} and "
           f"announced it, then {loses.type} moved it to {now}. A check (SELECT the status) and then an act (UPDATE) "
           "leave a gap in which the other consumer commits: let the UPDATE check for itself "
           "(... WHERE status = 'PENDING'), or lock the row as you read it (SELECT ... FOR UPDATE)", AT_ONCE)
    expect(announces(first) == announces(second) == state[0], f"two decisions about one order at once: the row is "
           f"{state[0]}, but they were announced as {_type(first)} and {_type(second)}. Read the row after your "
           "update, and announce what it says", AT_ONCE)


class Consumers:
    """Two consumer processes of the check's own, each with the learner's handler and a connection of its own."""

    def __init__(self, packed: bytes, database_url: str, run: str):
        self.database_url = database_url
        self.names = [f"exercise11-{run}-consumer-{i}" for i in (1, 2)]
        self.jobs = [SPAWN.Queue(), SPAWN.Queue()]
        self.answers = [SPAWN.Queue(), SPAWN.Queue()]
        self.processes = [start(_consumer, packed, database_url, name, jobs, answers, name=name)
                          for name, jobs, answers in zip(self.names, self.jobs, self.answers, strict=True)]

    def __enter__(self) -> "Consumers":
        return self

    def __exit__(self, *_) -> None:
        for jobs in self.jobs:
            jobs.put(None)
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()

    def _answer(self, i: int, timeout: float = 180) -> tuple:
        try:
            return self.answers[i].get(timeout=timeout)
        except queue.Empty:
            raise Wrong(f"your handler did not answer within {timeout:g} s in consumer {i + 1}: does it wait for "
                        "something that never comes?") from None

    def race(self, first: ev.Event, second: ev.Event) -> tuple[tuple[Any, Any], str | None]:
        """`first` in consumer 1, its transaction held open; `second` in consumer 2 until it waits for a lock of the
        first (or is done); then the first commits. Returns both answers and the second's error, if any."""
        self.jobs[0].put((first.to_json(), True))
        kind, *said = self._answer(0)
        if kind == "error":  # the first delivery of this event in this process: the learner's error, as it is
            raise ChildFailed(f"your handler raised on {first.type} in consumer 1:\n{said[0]}")
        out1 = check_type(_event(said[0]))
        self.jobs[1].put((second.to_json(), False))
        kind, *said = self._answer(1)  # it has the event, and calls the handler now (however long it took to start)
        answer2 = None
        deadline = time.monotonic() + 30
        with postgres.connect(self.database_url) as watcher:
            while answer2 is None and not _waits_for_a_lock(watcher, self.names[1]) and time.monotonic() < deadline:
                with contextlib.suppress(queue.Empty):
                    answer2 = self.answers[1].get(timeout=0.01)
        self.jobs[0].put("commit")
        kind, *said = self._answer(0)
        if kind == "error":
            raise ChildFailed(f"consumer 1 could not commit its transaction:\n{said[0]}")
        kind, *said = answer2 or self._answer(1)
        if kind == "error":
            if "NotImplementedError" in said[0]:
                raise ChildFailed(said[0])
            return (out1, None), said[1]
        return (out1, check_type(_event(said[0]))), None


def _consumer(packed: bytes, database_url: str, name: str, jobs, answers) -> None:
    """A consumer process of step D: each job one event in a transaction of its own, held open if asked."""
    handle = unpack(packed)
    with postgres.connect(database_url, application_name=name) as conn:
        while (job := jobs.get()) is not None:
            event, hold = ev.Event.model_validate_json(job[0]), job[1]
            if not hold:
                answers.put(("started",))
            try:
                with conn.transaction():
                    out = handle(conn, event)
                    said = out.to_json() if isinstance(out, ev.Event) else repr(out)
                    if hold:  # the answer now, the commit when the check says so
                        answers.put(("handled", said))
                        if jobs.get() != "commit":
                            return
            except Exception as error:  # noqa: BLE001  (the learner's, judged by the check)
                answers.put(("error", failure(), _error(error)))
                continue
            answers.put(("committed", said) if hold else ("handled", said))  # the second: once it has committed


def _event(said: str):
    try:
        return ev.Event.model_validate_json(said)
    except ValueError:
        return said  # not an event: check_type says so


def _waits_for_a_lock(watcher, name: str) -> bool:
    return watcher.execute("SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = %s "
                           "AND wait_event_type = 'Lock'", (name,)).fetchone()[0] is True


def order_created(order_id: str, quantity: int = 1) -> ev.Event:
    return ev.Event(type=ev.ORDER_CREATED, orderId=order_id, userId="alice", productId="P", quantity=quantity,
                    saleId=NO_SALE)


class Rollback(Exception):
    """The check's own: the rest of the batch failed."""


def deliver(conn, handle, event: ev.Event, what: str, rule: Rule | None = None, rollback: bool = False):
    """One event in a transaction of its own, as one batch. A failure of the event's first delivery (a SQL error)
    shows as it is; a failure on a repeated, late or odd event breaks `rule`. With `rollback`, the batch then
    fails anyway, and its transaction rolls back."""
    try:
        with conn.transaction():
            out = handle(conn, event)
            if rollback:
                raise Rollback
    except Rollback:
        return None
    except Exception as error:
        if rule is None or isinstance(error, NotImplementedError):
            error.add_note(f"(raised by your handler on {what})")
            raise
        raise Wrong(f"{what} failed with {_error(error)}. Every event may come twice, late or out of turn, and a "
                    "failing one comes back again and again, stopping its partition: the handler must be safe to "
                    "run twice", rule) from None
    return check_type(out)


def announced(said, status: str, reason: str | None, what: str) -> None:
    expect(announces(said) == status, f"{what}; your handler returned {_type(said)}", ANNOUNCES)
    expect(said.reason == reason, f"{what}; your handler's {said.type} says reason {said.reason!r}, the row "
           f"{reason!r}: announce the row's reason", ANNOUNCES)


def moved(conn, event: ev.Event, status: str, reason: str | None, what: str) -> None:
    expect(row(conn, event) == (status, reason), f"after {what} the row must be {status}"
           + (f" with reason {reason}" if reason else "") + f"; it is {row(conn, event)}", MOVES)


def check_type(out):
    expect(out is None or isinstance(out, ev.Event), f"handle must return an Event or None; it returned {out!r}",
           ANNOUNCES)
    return out


def announces(event) -> str | None:
    return STATE.get(event.type, event.type) if isinstance(event, ev.Event) else None


def _type(event) -> str:
    return event.type if isinstance(event, ev.Event) else repr(event)


def _error(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def _order(event: ev.Event) -> str:
    return f"{event.orderId}, {event.quantity} of {event.productId} for {event.userId}"


def _fields(event: ev.Event) -> tuple:
    return event.saleId, event.userId, event.productId, event.quantity


def fields(conn, event: ev.Event):
    return conn.execute("SELECT sale_id, user_id, product_id, quantity FROM orders WHERE order_id = %s",
                        (event.orderId,)).fetchone()


def row(conn, event: ev.Event):
    return conn.execute("SELECT status, reason FROM orders WHERE order_id = %s", (event.orderId,)).fetchone()


def _count(conn, event: ev.Event) -> int:
    return conn.execute("SELECT count(*) FROM orders WHERE order_id = %s", (event.orderId,)).fetchone()[0]


# --- step E: the order service -------------------------------------------------------------------------------------

BATCH = 5  # messages a batch at most: many batches, so every kill point comes long before the sale can settle
KILLS = (2, 4, 6, 8, 10, 12)  # the announcing batches (counted over both processes) after which one is killed


def as_the_order_service(stack: "Stack", handle, buyers: int, stock: int, instances: int = 2) -> None:
    """The learner's handler as the order service, in `instances` processes, killed at KILLS, while buyers buy one
    or two phones each; then the contract's invariants, and each order's announcements on order.events, in order."""
    expect(not any(alive(p.pid) for p in stack.processes("orders").values()), "this stack runs an order service of "
           "its own, which would decide these orders instead of your handler: start the notebook's stack with "
           "services=['gateway', 'inventory'], as its first cell does")
    settings = stack.wired()
    sale = stack.reset(stock=stock, per_user_limit=2)
    since = ends(settings, ev.ORDER_EVENTS)
    service = OrderService(settings, pack(handle, "handler", AT_ONCE), instances)
    try:
        service.ready()
        with ThreadPoolExecutor(1) as pool:
            bodies = [{"userId": f"buyer-{i:05d}", "productId": settings.product_id, "quantity": 1 + i % 2}
                      for i in range(buyers)]
            race = pool.submit(asyncio.run, swarm(settings.gateway_url + "/api/orders", bodies))
            accepted = service.supervise(settings, lambda: _accepted(race), timeout=300)
    finally:
        service.stop()
    state = invariants(settings, sale.saleId, accepted)
    expect(state.lost == 0, f"{state.lost} of {len(accepted)} accepted orders never reached CONFIRMED or CANCELLED: "
           "after a crash, the batch delivered again must announce each row's state again, or the inventory (or "
           "the buyer) never hears of it", ANNOUNCES)
    expect(state.sold_right, f"the sale broke the contract's invariants: {state.as_dict()}", MOVES)
    in_order(settings, accepted, since)
    print(f"  {len(accepted)} orders of one or two phones, your handler as the order service in {instances} "
          f"processes, killed {len(KILLS)} times ({', '.join(CRASHES)}): {state.confirmedUnits} sold of {stock}, "
          "nothing lost, every order announced, in order")


def _accepted(race) -> list[str] | None:
    """The orders the gateway accepted, once every buyer has had an answer."""
    return [b.body["orderId"] for b in race.result() if b.status == 202] if race.done() else None


def in_order(settings: Settings, accepted: list[str], since: dict) -> None:
    """Each order's announcements on order.events: order.saved first, then the one its row says, and nothing after."""
    wanted = set(accepted)
    seen: dict[str, list[str]] = {}
    for m in read_since(settings, ev.ORDER_EVENTS, since):
        key = (m.key() or b"").decode()
        if key in wanted:
            kind = ev.Event.model_validate_json(m.value() or b"").type
            if kind in STATE:
                seen.setdefault(key, []).append(kind)
    with postgres.connect(settings.database_url) as conn:
        final: dict[str, str] = dict(conn.execute("SELECT order_id, status FROM orders WHERE order_id = ANY(%s)",
                                  (accepted,)).fetchall())
    wrong = [o for o in accepted if not _told_in_order([STATE[kind] for kind in seen.get(o, [])], final.get(o))]
    expect(not wrong, f"{len(wrong)} orders were announced out of order, or not as their rows say "
           f"({short(f'{o}: {seen.get(o)} for a {final.get(o)} row' for o in wrong)}): announce order.saved while the "
           "row is PENDING, then only what the row says", ANNOUNCES)


def _told_in_order(states: list[str], final: str | None) -> bool:
    """PENDING (once or more), then the row's final state (once or more), and nothing else."""
    if not states or states[0] != "PENDING" or final not in states:
        return False
    decided = states.index(final)
    return set(states[:decided]) == {"PENDING"} and set(states[decided:]) == {final}


class OrderService:
    """`instances` processes running run_consumer's loop with the learner's handler, each killed at KILLS."""

    def __init__(self, settings: Settings, packed: bytes, instances: int):
        self.packed, self.settings, self.instances = packed, settings.model_dump_json(), instances
        self.announcing = SPAWN.Value("i", 0)  # announcing batches so far, over every process
        self.killed = SPAWN.Array("i", len(KILLS))
        self.stopping, self.reports = SPAWN.Event(), SPAWN.Queue()
        self.processes = [self._start(i) for i in range(instances)]

    def _start(self, instance: int):
        return start(_order_service, self.packed, self.settings, instance, self.instances, self.announcing,
                     self.killed, self.stopping, self.reports, name=f"{GROUP}-{instance}")

    def ready(self, timeout: float = 180) -> None:
        """Until every process owns partitions (on Apache Kafka, the group has settled): then the buyers come."""
        waiting, deadline = set(range(self.instances)), time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            self._report(waiting)
        expect(not waiting, f"the order service's processes {sorted(waiting)} took no partitions in {timeout:g} s")

    def _report(self, waiting: set | None = None) -> None:
        try:
            kind, instance, text = self.reports.get(timeout=0.1)
        except queue.Empty:
            return
        if kind == "error":
            raise ChildFailed(f"your handler raised in the order service (process {instance}):\n{text}")
        if waiting is not None:
            waiting.discard(instance)

    def supervise(self, settings: Settings, accepted, timeout: float) -> list[str]:
        """Restart each process killed at a kill point, until the buyers are done and every accepted order is
        decided, and every kill point was passed. Returns the accepted orders."""
        deadline, orders = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            self._report()
            for instance, process in enumerate(self.processes):
                if not process.is_alive():
                    if process.exitcode != -signal.SIGKILL:
                        self._report()
                        raise ChildFailed(f"the order service's process {instance} stopped (exit code "
                                          f"{process.exitcode})")
                    self.processes[instance] = self._start(instance)
            orders = orders if orders is not None else accepted()
            if orders is not None and all(self.killed[:]) and unsettled(settings, orders) == 0:
                return orders
            time.sleep(0.05)
        if orders is not None and all(self.killed[:]):
            return orders  # the invariants will say which orders never settled
        raise RuntimeError(f"the check's own kill points did not all come in {timeout:g} s "
                           f"({self.killed[:]} for {KILLS}): the check is wrong, not your handler")

    def stop(self) -> None:
        self.stopping.set()
        for process in self.processes:
            process.join(15)
            if process.is_alive():
                process.kill()


def _order_service(packed: bytes, settings_json: str, instance: int, instances: int, announcing, killed, stopping,
                   reports) -> None:
    """One process of the order service: run_consumer's loop with the learner's handler, killed where told."""
    handle = unpack(packed)
    settings = Settings.model_validate_json(settings_json).model_copy(update={"instance": instance,
                                                                              "instances": instances})
    source = kafka.member(settings, GROUP, log_level=0)
    owner = kafka.ownership(settings)
    owner.take(source, [ev.ORDER_EVENTS, ev.INVENTORY_EVENTS])
    producer = kafka.reliable_producer(settings.kafka_bootstrap_servers)
    told = False
    try:
        with postgres.connect(settings.database_url) as conn:
            while not stopping.is_set():
                messages = owner.admit(source, [m for m in kafka.next_batch(source, BATCH) if not kafka.failed(m)])
                if not told and source.assignment():
                    reports.put(("ready", instance, ""))
                    told = True
                if not messages:
                    continue
                events = _decode(messages)
                with conn.transaction():
                    out = [check_type(handle(conn, e)) for e in events]
                announced = [e for e in out if e is not None]
                kill = _kill_point(announced, announcing, killed)
                if kill == 0:
                    die()  # after the database commit, before the publish: the announcements are lost
                kafka.publish(producer, announced)
                if kill == 1:
                    die()  # after the publish, before the offsets' commit: the batch comes again
                source.commit(offsets=kafka.after(messages), asynchronous=False)
                if kill == 2:
                    die()  # after the offsets' commit
    except BaseException:  # noqa: BLE001  (the learner's, reported to the check as text)
        reports.put(("error", instance, failure()))
    finally:
        source.close()


def _kill_point(announced: list, announcing, killed) -> int | None:
    """Which of CRASHES comes after this batch, if it is one of KILLS (counted over every process)."""
    if not announced:
        return None
    with announcing.get_lock():
        announcing.value += 1
        n = announcing.value
    if n not in KILLS:
        return None
    killed[KILLS.index(n)] = 1
    return KILLS.index(n) % len(CRASHES)


def _decode(messages) -> list[ev.Event]:
    """Poison messages are exercise 13's business; here they are skipped."""
    events = []
    for m in messages:
        try:
            events.append(ev.Event.model_validate_json(m.value() or b""))
        except ValueError:
            continue
    return events

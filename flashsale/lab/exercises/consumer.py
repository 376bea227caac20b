"""Exercise 11: the order consumer, idempotent under redelivery.

The learner writes `handle(conn, event) -> Event | None`: apply one event to the real
`orders` table, return the event that announces the row's state. The check first
delivers events by hand: twice, late and out of turn, again after their batch rolled
back, and twice at once on two connections (as two consumers do during a rebalance),
holding the first transaction open until the second waits for its lock, so that a
check-then-act race happens every time. Then the learner's handler *is* the order
service: it consumes the real topics as group `exercise11-orders` (the notebook's stack
runs no order service, and a group of its own never meets one that does), between the
real gateway and inventory, while 1,000 buyers buy, and it "crashes" after every third
batch, between publishing and committing, so that batch is delivered again, exactly as
after a `kill -9`. It takes its partitions as the services do (`kafka.member`,
`kafka.ownership`): a group member on Apache Kafka, the owner of every partition on tansu.

A failure of an event's first delivery (a SQL error, say) shows as it is; only a failure
on a repeated, late or concurrent delivery is reported as a redelivery problem.
"""
import threading
import time

from flashsale import events as ev
from flashsale.adapters import kafka, postgres
from flashsale.harness.checks import invariants, settle
from flashsale.harness.load import run_buyers
from flashsale.lab.exercises import Wrong, expect, passed, run_id
from flashsale.stack.control import Stack

GROUP = "exercise11-orders"
NO_SALE = 2**31 - 1  # the hand-made orders belong to no sale, so they count in none
STATE = {ev.ORDER_SAVED: "PENDING", ev.ORDER_CONFIRMED: "CONFIRMED", ev.ORDER_CANCELLED: "CANCELLED"}


def check(stack: Stack, handle, buyers: int = 1000, stock: int = 100, crash_every: int = 3) -> None:
    settings = stack.wired()
    by_hand(settings.database_url, handle, run_id())
    sale = stack.reset(stock=stock)
    service = OrderService(settings, handle, crash_every)
    service.start()
    try:
        race = run_buyers("gateway", settings.gateway_url, buyers, settings.product_id, progress=False,
                          users=[f"buyer-{i:05d}" for i in range(buyers)])
        accepted = race.order_ids
        settled = settle(settings, accepted, timeout=60)
    finally:
        service.stop()
    if service.error is not None:
        raise service.error
    state = invariants(settings, sale.saleId, accepted)
    expect(settled is not None and state.lost == 0, f"{state.lost} of {len(accepted)} accepted orders never reached "
           "CONFIRMED or CANCELLED: look at what your handler returns, inventory decides only on order.saved")
    # Invariants 1-5. This stack runs no payments: a reservation confirms the order, as before the saga, so
    # "every CONFIRMED order paid once" (6) is not this exercise's to keep.
    expect(state.sold_right, f"the sale broke the contract's invariants: {state.as_dict()}")
    passed(f"{buyers:,} buyers, your handler as the order service, {service.redelivered} batches delivered twice: "
           f"{state.confirmedUnits} sold of {stock}, nothing lost, every order decided once")
    print("All checks passed: compare with flashsale.services.orders.handle, which does the same for a whole batch.")


TWICE = ("Every event may come twice, and a failing one comes back again and again: the handler must be safe to "
         "run twice")
LATE = "Events come late and out of turn, and a handler that fails on one stops its partition"


def by_hand(database_url: str, handle, run: str) -> None:
    with postgres.connect(database_url) as conn:
        in_turn_and_out_of_turn(conn, handle, run)
    at_once(database_url, handle, run)


def in_turn_and_out_of_turn(conn, handle, run: str) -> None:
    created = order_created(f"ex11-{run}-a")
    reserved = created.next(ev.STOCK_RESERVED, availableStock=99)
    insufficient = created.next(ev.STOCK_INSUFFICIENT, reason="SOLD_OUT", availableStock=0)

    first = deliver(conn, handle, created, "the first order.created")
    expect(row(conn, created) == ("PENDING", None),
           f"after order.created the row must be PENDING; it is {row(conn, created)}")
    expect(announces(first) == "PENDING", f"a new PENDING row is announced with order.saved (inventory waits for it); "
           f"your handler returned {_type(first)}")
    again = deliver(conn, handle, created, "order.created delivered a second time", TWICE)
    expect(_count(conn, created) == 1 and announces(again) in (None, "PENDING"), "order.created delivered twice "
           f"must leave one PENDING row; it left {_count(conn, created)} and returned {_type(again)}")
    passed("order.created twice: one PENDING row")

    undone = order_created(f"ex11-{run}-undone")
    deliver(conn, handle, undone, "order.created in a batch that will fail", rollback=True)
    retried = deliver(conn, handle, undone, "order.created delivered again after its batch failed", TWICE)
    expect(row(conn, undone) == ("PENDING", None) and announces(retried) == "PENDING", "a batch failed after your "
           "handler had run (another event of it failed; its transaction rolled back), and the batch came again: "
           f"the order's row is {row(conn, undone)} and your handler returned {_type(retried)}, so the order is lost. "
           "Your handler remembered the event outside the database (in memory?), where no rollback undoes it: let "
           "the rows be the memory, they commit or roll back with the batch")
    passed("a batch rolled back and delivered again: the order is there, as if the first try never happened")

    decided = deliver(conn, handle, reserved, "the first inventory.reserved")
    expect(row(conn, created)[0] == "CONFIRMED",
           f"after inventory.reserved the row must be CONFIRMED; it is {row(conn, created)}")
    expect(announces(decided) == "CONFIRMED", f"a confirmed row is announced with order.confirmed; your handler "
           f"returned {_type(decided)}")
    repeated = deliver(conn, handle, reserved, "inventory.reserved delivered a second time", TWICE)
    expect(announces(repeated) == "CONFIRMED", "inventory.reserved delivered a second time must announce the row "
           f"again, order.confirmed; your handler returned {_type(repeated)}. The first announcement may never have "
           "left: a crash after the batch committed and before it published delivers the batch again, and this is "
           "the only chance left to announce it")
    contrary = deliver(conn, handle, insufficient, "a late inventory.insufficient", LATE)
    expect(row(conn, created)[0] == "CONFIRMED", "a decision moved an order that was already decided "
           f"(CONFIRMED -> {row(conn, created)[0]}): only a PENDING row may move (UPDATE ... WHERE status = 'PENDING')")
    expect(announces(contrary) in (None, "CONFIRMED"), "a late inventory.insufficient for a CONFIRMED order "
           f"announced {_type(contrary)}, though the row is still CONFIRMED: announce what the row says, not what "
           "the event asked for")
    late = deliver(conn, handle, created, "order.created after the decision", TWICE)
    expect(row(conn, created)[0] == "CONFIRMED", "a redelivered order.created moved a CONFIRMED order back to "
           f"{row(conn, created)[0]}: an insert that finds the row must do nothing (ON CONFLICT DO NOTHING)")
    expect(announces(late) != "PENDING", "after the decision, a redelivered order.created must not announce "
           "order.saved again (return None, or what the row says now)")
    passed("decisions twice, late and out of turn: the row moves once, from PENDING, and every answer says so")

    ghost = order_created(f"ex11-{run}-ghost").next(ev.STOCK_RESERVED, availableStock=1)
    said = deliver(conn, handle, ghost, "a decision about an order never created", LATE)
    expect(_count(conn, ghost) == 0 and said is None, "a decision about an order never created must change "
           f"nothing and announce nothing; your handler made {_count(conn, ghost)} rows and returned {_type(said)}")
    passed("a decision about an unknown order changes nothing")


def at_once(database_url: str, handle, run: str) -> None:
    """Two consumers handle the same order at the same time, as during a rebalance, when the member that lost a
    partition is still finishing its batch while the new owner starts on it again. The race is made to happen every
    time: the first delivery's transaction stays open until the second waits for one of its locks (or is done)."""
    created = order_created(f"ex11-{run}-both")
    with postgres.connect(database_url) as conn:
        outs, error = racing(database_url, handle, created, created)
        expect(error is None, "the same order.created, handled by two consumers at once, failed on the second with "
               f"{_error(error)}. A check (SELECT: is it there?) and then an act (INSERT) leave a gap in which the "
               "other consumer commits: let one statement check and act (INSERT ... ON CONFLICT DO NOTHING)")
        expect(_count(conn, created) == 1 and row(conn, created)[0] == "PENDING",
               f"the same order.created, handled by two consumers at once, left {_count(conn, created)} rows")
        passed("the same order.created, twice at once: one PENDING row, no error")

        reserved = created.next(ev.STOCK_RESERVED, availableStock=9)
        insufficient = created.next(ev.STOCK_INSUFFICIENT, reason="SOLD_OUT", availableStock=0)
        (first, second), error = racing(database_url, handle, reserved, insufficient)
        expect(error is None, f"two decisions about one order at once: the second failed with {_error(error)}. "
               f"{LATE}")
        expect(announces(first) == "CONFIRMED", f"inventory.reserved for a PENDING order announced {_type(first)}")
        now = row(conn, created)[0]
        expect(now == "CONFIRMED", "two decisions about one order at once: the first moved the row to CONFIRMED and "
               f"announced it, then the second moved it to {now}. A check (SELECT the status) and then an act "
               "(UPDATE) leave a gap in which the other consumer commits: let the UPDATE check for itself "
               "(... WHERE status = 'PENDING'), or lock the row as you read it (SELECT ... FOR UPDATE)")
        expect(announces(second) in (None, "CONFIRMED"), "two decisions about one order at once: the row is "
               f"CONFIRMED, but the second announced {_type(second)}. Read the row after your update, and announce "
               "what it says")
        passed("two contrary decisions at once: the first wins, and both say so")


def racing(database_url: str, handle, first: ev.Event, second: ev.Event):
    """`first` and `second` delivered on two connections at once; (their two answers) and the second's error."""
    outs: list = [None, None]
    errors: list[Exception | None] = [None]

    def second_consumer(conn):
        try:
            with conn.transaction():
                outs[1] = handle(conn, second)
        except Exception as error:  # noqa: BLE001  (judged by the caller, NotImplementedError included)
            errors[0] = error

    with postgres.connect(database_url) as one, postgres.connect(database_url) as two, \
            postgres.connect(database_url) as watcher:
        with one.transaction():
            outs[0] = check_type(handle(one, first))  # its error, if any, shows as it is
            thread = threading.Thread(target=second_consumer, args=(two,), daemon=True)
            thread.start()
            deadline = time.monotonic() + 10
            while thread.is_alive() and not _waits_for_a_lock(watcher, two.info.backend_pid) \
                    and time.monotonic() < deadline:
                time.sleep(0.01)
        thread.join(30)
        expect(not thread.is_alive(), "the second consumer's handler was still running 30 s after the first committed")
    if isinstance(errors[0], NotImplementedError):
        raise errors[0]
    if errors[0] is None:
        check_type(outs[1])
    return outs, errors[0]


def _waits_for_a_lock(watcher, pid: int) -> bool:
    return watcher.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                           (pid,)).fetchone()[0] is True


def _error(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def order_created(order_id: str) -> ev.Event:
    return ev.Event(type=ev.ORDER_CREATED, orderId=order_id, userId="alice", productId="P", quantity=1,
                    saleId=NO_SALE)


class Rollback(Exception):
    """The check's own: the rest of the batch failed."""


def deliver(conn, handle, event: ev.Event, what: str, why: str | None = None, rollback: bool = False):
    """One event in a transaction of its own, as one batch. A failure of the event's first delivery (a SQL error)
    shows as it is; a failure on a repeated, late or odd event is judged `why`. With `rollback`, the batch then
    fails anyway, and its transaction rolls back."""
    try:
        with conn.transaction():
            out = handle(conn, event)
            if rollback:
                raise Rollback
    except Rollback:
        return None
    except Exception as error:
        if why is None or isinstance(error, NotImplementedError):
            error.add_note(f"(raised by your handler on {what})")
            raise
        raise Wrong(f"{what} failed with {_error(error)}. {why}") from None
    return check_type(out)


def check_type(out):
    expect(out is None or isinstance(out, ev.Event), f"handle must return an Event or None; it returned {out!r}")
    return out


def announces(event) -> str | None:
    return STATE.get(event.type, event.type) if event is not None else None


def _type(event) -> str:
    return event.type if event is not None else "None"


def row(conn, event: ev.Event):
    return conn.execute("SELECT status, reason FROM orders WHERE order_id = %s", (event.orderId,)).fetchone()


def _count(conn, event: ev.Event) -> int:
    return conn.execute("SELECT count(*) FROM orders WHERE order_id = %s", (event.orderId,)).fetchone()[0]


class OrderService(threading.Thread):
    """run_consumer's loop with the learner's handler, in this kernel, crashing between publish and commit."""

    def __init__(self, settings, handle, crash_every: int):
        super().__init__(daemon=True, name="exercise-orders")
        self.settings, self.handle, self.crash_every = settings, handle, crash_every
        self.running, self.redelivered = True, 0
        self.error: Exception | None = None

    def run(self) -> None:
        producer = kafka.reliable_producer(self.settings.kafka_bootstrap_servers)
        source, batches = self._consumer(), 0
        try:
            with postgres.connect(self.settings.database_url) as conn:
                while self.running:
                    messages = [m for m in source.consume(500, timeout=0.1) if not m.error()]
                    events = self._decode(messages)
                    if not events:
                        continue
                    with conn.transaction():
                        out = [self._handle(conn, e) for e in events]
                    kafka.publish(producer, [e for e in out if e is not None])
                    batches += 1
                    if batches % self.crash_every == 0:  # a crash after the publish, before the commit
                        # A member's close() commits what it read (kafka.commit_before_revoke): seek back first,
                        # so the group's offsets stay before this batch, as after a kill -9.
                        kafka.rewind(source, messages)
                        source.close()
                        source, self.redelivered = self._consumer(), self.redelivered + 1
                    else:
                        source.commit(asynchronous=False)
        except Exception as error:
            self.error = error
        finally:
            source.close()

    def _handle(self, conn, event: ev.Event):
        try:
            return check_type(self.handle(conn, event))
        except Exception as error:
            error.add_note(f"(raised by your handler on {event.type} for order {event.orderId}, as the order service)")
            raise

    @staticmethod
    def _decode(messages) -> list[ev.Event]:
        """Poison messages are exercise 13's business; here they are skipped."""
        events = []
        for m in messages:
            try:
                events.append(ev.Event.model_validate_json(m.value() or b""))
            except ValueError:
                continue
        return events

    def _consumer(self):
        settings = self.settings.model_copy(update={"instance": 0, "instances": 1})  # the only order service
        source = kafka.member(settings, GROUP, log_level=0)
        kafka.ownership(settings).take(source, [ev.ORDER_EVENTS, ev.INVENTORY_EVENTS])
        return source

    def stop(self) -> None:
        self.running = False
        self.join(timeout=30)

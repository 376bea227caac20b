"""Exercise 11: the order consumer, idempotent under redelivery.

The learner writes `handle(conn, event) -> Event | None`: apply one event to the real
`orders` table, return the event that announces the row's state. The check first
delivers events by hand, twice and out of turn; then the learner's handler *is* the
order service: it consumes the real topics as group `exercise11-orders` (the
notebook's stack runs no order service, and a group of its own never meets one that
does), between the real gateway and inventory, while 1,000 buyers buy, and it
"crashes" after every third batch, between publishing and committing, so that batch
is delivered again, exactly as after a `kill -9`. It takes its partitions as the
services do (`kafka.member`, `kafka.ownership`): a group member on Apache Kafka, the
owner of every partition on tansu.
"""
import threading

from flashsale import events as ev
from flashsale.adapters import kafka, postgres
from flashsale.lab.checks import invariants, settle
from flashsale.lab.exercises import Wrong, expect, passed, run_id
from flashsale.lab.load import run_buyers
from flashsale.stack.control import Stack

GROUP = "exercise11-orders"
NO_SALE = 2**31 - 1  # the hand-made orders belong to no sale, so they count in none
STATE = {ev.ORDER_SAVED: "PENDING", ev.ORDER_CONFIRMED: "CONFIRMED", ev.ORDER_CANCELLED: "CANCELLED"}


def check(stack: Stack, handle, buyers: int = 1000, stock: int = 100, crash_every: int = 3) -> None:
    settings = stack.wired()
    with postgres.connect(settings.database_url) as conn:
        by_hand(conn, handle, run_id())
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


def by_hand(conn, handle, run: str) -> None:
    created = ev.Event(type=ev.ORDER_CREATED, orderId=f"ex11-{run}-a", userId="alice", productId="P", quantity=1,
                       saleId=NO_SALE)
    reserved = created.next(ev.STOCK_RESERVED, availableStock=99)
    insufficient = created.next(ev.STOCK_INSUFFICIENT, reason="SOLD_OUT", availableStock=0)

    first = deliver(conn, handle, created, "the first order.created")
    expect(row(conn, created) == ("PENDING", None),
           f"after order.created the row must be PENDING; it is {row(conn, created)}")
    expect(announces(first) == "PENDING", f"a new PENDING row is announced with order.saved (inventory waits for it); "
           f"your handler returned {_type(first)}")
    again = deliver(conn, handle, created, "order.created delivered a second time")
    expect(_count(conn, created) == 1 and announces(again) in (None, "PENDING"), "order.created delivered twice "
           f"must leave one PENDING row; it left {_count(conn, created)} and returned {_type(again)}")
    passed("order.created twice: one PENDING row")

    decided = deliver(conn, handle, reserved, "inventory.reserved")
    expect(row(conn, created)[0] == "CONFIRMED",
           f"after inventory.reserved the row must be CONFIRMED; it is {row(conn, created)}")
    expect(announces(decided) == "CONFIRMED", f"a confirmed row is announced with order.confirmed; your handler "
           f"returned {_type(decided)}")
    deliver(conn, handle, reserved, "inventory.reserved delivered a second time")
    deliver(conn, handle, insufficient, "a late inventory.insufficient")
    expect(row(conn, created)[0] == "CONFIRMED", "a decision moved an order that was already decided "
           f"(CONFIRMED -> {row(conn, created)[0]}): only a PENDING row may move (UPDATE ... WHERE status = 'PENDING')")
    late = deliver(conn, handle, created, "order.created after the decision")
    expect(row(conn, created)[0] == "CONFIRMED", "a redelivered order.created moved a CONFIRMED order back to "
           f"{row(conn, created)[0]}: an insert that finds the row must do nothing (ON CONFLICT DO NOTHING)")
    expect(announces(late) != "PENDING", "after the decision, a redelivered order.created must not announce "
           "order.saved again (return None, or what the row says now)")
    passed("decisions twice, late and out of turn: the row moves once, from PENDING")

    ghost = created.model_copy(update={"orderId": f"ex11-{run}-ghost"}).next(ev.STOCK_RESERVED, availableStock=1)
    said = deliver(conn, handle, ghost, "a decision about an order never created")
    expect(_count(conn, ghost) == 0 and said is None, "a decision about an order never created must change "
           f"nothing and announce nothing; your handler made {_count(conn, ghost)} rows and returned {_type(said)}")
    passed("a decision about an unknown order changes nothing")


def deliver(conn, handle, event: ev.Event, what: str):
    try:
        with conn.transaction():
            out = handle(conn, event)
    except NotImplementedError:
        raise
    except Exception as error:
        raise Wrong(f"{what} failed with {type(error).__name__}: {str(error).splitlines()[0]}. Every event may "
                    "come twice, and a failing one comes back again and again: the handler must be safe to run "
                    "twice") from None
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
                        out = [deliver(conn, self.handle, e, f"{e.type} for order {e.orderId}") for e in events]
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

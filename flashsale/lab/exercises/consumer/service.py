"""Exercise 11, step E: the learner's handler as the order service, in two processes of its own.

They consume the real topics as group `exercise11-orders` (the notebook's stack runs no order service), between
the real gateway and inventory, while 1,000 buyers buy one or two phones each, and take their partitions as the
services do (`kafka.member`, `kafka.ownership`): a group member on Apache Kafka, by number on tansu. The check
kills (SIGKILL) a process at six points it chooses by batch, never by the clock: after the database commit and
before the publish (the announcements of a committed batch lost), after the publish and before the offsets'
commit (the batch comes again), and after that commit; and starts it again. A batch holds at most BATCH messages,
so the kill points all come long before the sale can settle: its orders need many more batches than KILLS.
"""
import asyncio
import queue
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from flashsale import events as ev
from flashsale.adapters import kafka, postgres
from flashsale.harness.checks import invariants, unsettled
from flashsale.harness.load import swarm
from flashsale.lab.exercises import expect, short
from flashsale.lab.exercises.consumer.by_hand import check_type
from flashsale.lab.exercises.consumer.rules import ANNOUNCES, AT_ONCE, MOVES, STATE
from flashsale.lab.exercises.log import ends, read_since
from flashsale.lab.exercises.processes import SPAWN, ChildFailed, die, failure, pack, start, unpack
from flashsale.settings import Settings
from flashsale.stack.processes import alive

if TYPE_CHECKING:
    from flashsale.stack.control import Stack

GROUP = "exercise11-orders"


CRASHES = ("after the database commit, before the publish", "after the publish, before the offsets' commit",
           "after the offsets' commit")


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
    source = kafka.KafkaSource({**kafka.member_config(settings, GROUP), "log_level": 0}, BATCH)
    owner = kafka.ownership(settings)
    owner.take(source, [ev.ORDER_EVENTS, ev.INVENTORY_EVENTS])
    producer = kafka.reliable_producer(settings.kafka_bootstrap_servers)
    told = False
    try:
        with postgres.connect(settings.database_url) as conn:
            while not stopping.is_set():
                messages = owner.admit(source, source.next_batch())
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


def _next_batch(source, batch: int) -> list:
    """The first message as soon as it comes, with whatever else has already arrived (as the services' loop)."""
    first = source.consume(1, timeout=0.1)
    return first + source.consume(batch - 1, timeout=0) if first else first


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

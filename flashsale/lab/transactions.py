"""Notebook 08: the invoice job (services/invoices.py) run, killed inside a transaction, run again; and its output
read as a `read_committed` and as a `read_uncommitted` consumer would.
"""
import os
import re
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

from confluent_kafka import TopicPartition

from flashsale import events as ev
from flashsale.adapters import kafka
from flashsale.stack.control import Stack
from flashsale.stack.processes import alive

KILL_BATCH = 50  # messages per transaction while the kill waits: 100 confirmations are two transactions at least
SETTLED_S = 1.0  # the log's end must stay put this long, the orders group idle, before the job may read it


def start_job(stack: Stack, hold_s: float = 0.0, batch: int | None = None) -> int:
    """`python -m flashsale.services.invoices` as a process of this stack (in its table, like every other); its pid."""
    marker(stack).unlink(missing_ok=True)
    return stack.launch("invoices", invoice_hold_s=hold_s, **({"invoice_batch_size": batch} if batch else {})).pid


def marker(stack: Stack) -> Path:
    return stack.home / "run" / "invoices.in-transaction"


def run_job(stack: Stack, timeout: float = 120) -> str:
    """Run the job to the end of order.events; what it said last."""
    pid = start_job(stack)
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            raise TimeoutError(f"the invoice job did not finish in {timeout} s; see {stack.log_path('invoices')}")
        time.sleep(0.2)
    return stack.log_path("invoices").read_text().strip().splitlines()[-1].split("] ")[-1]


def kill_in_transaction(stack: Stack, nth: int = 2, hold_s: float = 5, timeout: float = 120) -> dict[str, int]:
    """Run the job holding each transaction open; `kill -9` it inside its `nth` transaction with invoices in it."""
    pid, deadline = start_job(stack, hold_s, KILL_BATCH), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and alive(pid):
            said = re.fullmatch(r"(\d+) (\d+)", marker(stack).read_text()) if marker(stack).exists() else None
            if said and int(said[1]) >= nth:  # a marker read half-written never matches
                os.kill(pid, signal.SIGKILL)
                transaction, invoices = int(said[1]), int(said[2])
                return {"killed": pid, "in its transaction with invoices no.": transaction,
                        "invoices written in it": invoices}
            time.sleep(0.1)
        raise RuntimeError(f"the job ended before its transaction {nth} (too few orders?)")
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def read_invoices(stack: Stack, isolation: str) -> list[ev.Event]:
    """Every invoice on invoice.events, as a consumer with `isolation.level=<isolation>` reads it, to its end."""
    return [ev.Event.from_json(value) for value in read_topic(stack, ev.INVOICE_EVENTS, isolation)]


def read_topic(stack: Stack, topic: str, isolation: str, timeout: float = 30) -> list[bytes]:
    """Every message of `topic` that a reader with `isolation.level=<isolation>` gets, up to where it says "end".

    For read_committed, the end is the last stable offset: the first message of the oldest open transaction."""
    settings = stack.wired()
    reader = kafka.consumer(settings.kafka_bootstrap_servers, f"lab-{uuid.uuid4()}", stack.profile.reading,
                            **{"isolation.level": isolation, "enable.partition.eof": True, **kafka.QUIET})
    try:
        reader.assign([TopicPartition(topic, p, 0) for p in range(settings.partitions)])
        return [m.value() or b"" for batch in kafka.read_to_end(reader, timeout, wait_s=0.5) for m in batch]
    finally:
        reader.close()


def confirmations(stack: Stack, timeout: float = 60) -> int:
    """How many order.confirmed events order.events holds: the job's input, counted once the log is complete.

    A sale's orders are final in PostgreSQL a moment before the orders service has published the last of their
    order.confirmed events, and a repeated event makes it announce a decision again. Counted, or read by the job,
    while the log still grows, the counts of notebook 08 would be off by what came later (and on tansu a fetch
    that races a write can skip a batch: README). So first wait until every order the table says CONFIRMED has
    its order.confirmed in the log, the orders group has nothing left to handle, and the log's end stays put."""
    from flashsale.lab.groups import LagMeter
    from flashsale.lab.readmodel import table
    from flashsale.lab.tap import events

    counts, settings = stack.sale(), stack.wired()
    sale = counts.saleId if counts else None
    sold = {order for order, row in table(stack, sale).items() if row["status"] == "CONFIRMED"} if sale else set()
    meter, deadline, ends = LagMeter(settings), time.monotonic() + timeout, None
    try:
        while True:
            idle = sum(row["lag"] for row in meter.read() if row["group"] == "orders") == 0
            now = _ends(stack, ev.ORDER_EVENTS)
            confirmed = [e for e in events(stack, ev.ORDER_EVENTS) if e.type == ev.ORDER_CONFIRMED]
            if idle and now == ends and sold <= {e.orderId for e in confirmed}:
                return len(confirmed)
            if time.monotonic() > deadline:
                raise TimeoutError(f"order.events still growing after {timeout} s, or missing confirmations")
            ends = now
            time.sleep(SETTLED_S)
    finally:
        meter.close()


def confirmed_orders(stack: Stack) -> Counter:
    """orderId -> how many order.confirmed events name it: what the job must invoice, once each event."""
    from flashsale.lab.tap import events
    return Counter(e.orderId for e in events(stack, ev.ORDER_EVENTS) if e.type == ev.ORDER_CONFIRMED)


def _ends(stack: Stack, topic: str) -> list[int]:
    settings = stack.wired()
    client = kafka.consumer(settings.kafka_bootstrap_servers, f"lab-{uuid.uuid4()}", stack.profile.reading,
                            **kafka.QUIET)
    try:
        return [client.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(settings.partitions)]
    finally:
        client.close()


# What each embedded broker does with a transaction, as measured here with this notebook's job (confluent-kafka 2.x).
BROKERS = {
    "kafka": ("Apache Kafka 4.1: transactions work. An open transaction is hidden from read_committed readers; an "
              "aborted one stays in the log, and read_committed readers skip it."),
    "tansu": ("tansu 0.6: the transactional API answers (InitProducerId, AddOffsetsToTxn, TxnOffsetCommit, EndTxn), "
              "and an open transaction is hidden from read_committed readers; but an aborted one is not: once it is "
              "aborted, read_committed readers see its writes as if committed. Exactly once does not hold here."),
}
HIDES_ABORTED = {"kafka": True, "tansu": False}


def broker(stack: Stack) -> None:
    """Print what this stack's broker does with transactions."""
    print(BROKERS[stack.settings.broker])


def tallies(stack: Stack) -> dict[str, int]:
    """The invoice job's two tallies in Redis: the counter, and the number of orders in the set."""
    from flashsale.lab.control import redis
    from flashsale.services.invoices import COUNTED, INVOICED
    client = redis(stack)
    return {"counter": int(client.get(COUNTED) or 0), "orders in the set": client.scard(INVOICED)}


def exactly_once(stack: Stack, committed: list[ev.Event], confirmed: int) -> bool:
    """Whether read_committed showed one invoice per order.confirmed event, no more, no fewer; and print it.

    Per event, not per order: an order.confirmed the orders service announced twice is two records of input, and
    a transaction processes each record once; deduplicating them is a key's work (the table in the notebook)."""
    once = len(committed) == confirmed and Counter(e.orderId for e in committed) == confirmed_orders(stack)
    name = "Apache Kafka" if stack.settings.broker == "kafka" else stack.settings.broker
    print(f"On {name}, read_committed shows {len(committed)} invoices for {confirmed} order.confirmed: "
          + ("exactly once." if once else f"{len(committed) - confirmed} too many, the aborted batch's."))
    return once

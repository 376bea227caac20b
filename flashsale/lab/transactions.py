"""Notebook 08: the invoice job (services/invoices.py) run, killed inside a transaction, run again; and its output
read as a `read_committed` and as a `read_uncommitted` consumer would.
"""
import os
import signal
import time
import uuid
from pathlib import Path

from confluent_kafka import TopicPartition

from flashsale import events as ev
from flashsale.adapters import kafka
from flashsale.stack.control import Stack
from flashsale.stack.processes import alive

KILL_BATCH = 50  # messages per transaction while the kill waits: 100 confirmations are two transactions at least


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
            text = marker(stack).read_text() if marker(stack).exists() else ""
            if text and int(text.split()[0]) >= nth:
                os.kill(pid, signal.SIGKILL)
                transaction, invoices = map(int, text.split())
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


def confirmations(stack: Stack) -> int:
    """How many order.confirmed events order.events holds: the job's input."""
    from flashsale.lab.tap import events
    return sum(e.type == ev.ORDER_CONFIRMED for e in events(stack, ev.ORDER_EVENTS))


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
    """Whether read_committed showed one invoice per order.confirmed, each order once; and print it, per broker."""
    once = len(committed) == confirmed == len({e.orderId for e in committed})
    name = "Apache Kafka" if stack.settings.broker == "kafka" else stack.settings.broker
    print(f"On {name}, read_committed shows {len(committed)} invoices for {confirmed} order.confirmed: "
          + ("exactly once." if once else f"{len(committed) - confirmed} too many, the aborted batch's."))
    return once

"""The invoice job: an invoice for every confirmed order, exactly once, with Kafka transactions.

order.confirmed (order.events) -> invoice.issued (invoice.events)

A consume-transform-produce loop, as confluent-kafka-python's examples/eos-transactions.py. The invoices of
a batch and the consumer's offsets after it are committed in one Kafka transaction: both, or neither. A
reader with `isolation.level=read_committed` sees the invoices of committed transactions only. Killed in
the middle of one, the job is started again: `init_transactions` fences the dead instance (same
`transactional.id`) and aborts its open transaction, and the batch is read again from the last committed
offsets and written once more, this time committed.

It is a job, not a service: it reads order.events to its end, and exits. Only Kafka is in the transaction.
The job also keeps two tallies in Redis, outside it, as any handler's side effects are: a counter, which a
batch done twice counts twice, and a set of the orders invoiced, which it does not (notebook 08).
"""
import logging
import time

from confluent_kafka import Message, Producer, TopicPartition
from redis import Redis

from flashsale import events as ev
from flashsale.adapters import kafka, redis as redis_adapter
from flashsale.services.runner import configure_logging
from flashsale.settings import Settings

log = logging.getLogger(__name__)
GROUP = "invoices"
TRANSACTIONAL_ID = "invoices"  # the same id after a restart: that is how the broker knows whom to fence
COUNTED, INVOICED = "invoices:counted", "invoices:orders"  # the tallies in Redis


def invoices(batch: list[ev.Event]) -> list[ev.Event]:
    """The transform: one invoice for each order.confirmed of the batch."""
    return [e.next(ev.INVOICE_ISSUED) for e in batch if e.type == ev.ORDER_CONFIRMED]


def run(settings: Settings) -> int:
    """Invoice order.events from the committed offsets to its end, one transaction per batch; returns the count."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, "transactional.id": TRANSACTIONAL_ID})
    producer.init_transactions(30)  # fences an older instance, aborts its open transaction; before reading offsets
    source = kafka.consumer(settings.kafka_bootstrap_servers, GROUP, **kafka.READ_COMMITTED)
    kafka.assign_from_committed(source, [TopicPartition(ev.ORDER_EVENTS, p) for p in range(settings.partitions)])
    redis, issued, with_invoices = redis_adapter.connect(settings.redis_url), 0, 0
    try:
        for messages in kafka.read_to_end(source, timeout=None, batch=settings.invoice_batch_size, wait_s=1):
            batch = decode(messages)
            if not batch:
                continue
            producer.begin_transaction()
            out = invoices(batch)
            for invoice in out:
                producer.produce(invoice.topic, invoice.to_json(), key=invoice.key)
            kafka.flush(producer, 30, "invoices")  # in the log, not committed: read_committed readers see none yet
            tally(redis, out)  # not in the transaction: a kill after this line, and the batch is tallied again
            with_invoices += bool(out)
            hold(settings, with_invoices, len(out))
            producer.send_offsets_to_transaction(source.position(source.assignment()),
                                                 source.consumer_group_metadata(), 30)
            producer.commit_transaction(30)  # the invoices and the offsets, at once
            issued += len(out)
    finally:
        source.close()
    return issued


def decode(messages: list[Message]) -> list[ev.Event]:
    """The events of the batch; what is not an event (a poison message) is skipped: the services dead-letter it."""
    events = []
    for m in messages:
        try:
            events.append(ev.Event.from_json(m.value() or b""))
        except ValueError:
            continue
    return events


def tally(redis: Redis, out: list[ev.Event]) -> None:
    """Side effects outside Kafka: a counter (not idempotent) and a set keyed by orderId (idempotent)."""
    if out:
        redis.incrby(COUNTED, len(out))
        redis.sadd(INVOICED, *(invoice.orderId for invoice in out))


def hold(settings: Settings, transaction: int, invoices_in_it: int) -> None:
    """The lab's window (Settings.invoice_hold_s): the `transaction`-th with invoices is open, they are written, and
    a marker file says so."""
    if settings.invoice_hold_s and invoices_in_it:
        marker = settings.home / "run" / "invoices.in-transaction"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{transaction} {invoices_in_it}")
        time.sleep(settings.invoice_hold_s)
        marker.unlink(missing_ok=True)


def main() -> None:
    configure_logging("invoices")
    settings = Settings()
    kafka.ensure_topics(settings.kafka_bootstrap_servers, settings.partitions, topics=[ev.INVOICE_EVENTS])
    log.info("issued %d invoices; order.events read to its end", run(settings))


if __name__ == "__main__":
    main()

"""Exercise 18's rules, the steps of its check, and the input it writes: 90 orders, 60 confirmed."""

from flashsale import events as ev
from flashsale.lab.exercises import Rule

RULES = (
    Rule(1, "One `invoice.issued` on `topic` for each `order.confirmed` among `messages`, keyed by its `orderId`, "
            "and nothing else."),
    Rule(2, "The consumer's position after the batch is committed with the transaction "
            "(`send_offsets_to_transaction`), never by the consumer."),
    Rule(3, "One transaction per batch: its invoices and its offsets commit together, or not at all."),
    Rule(4, "It returns how many invoices it wrote."),
)


INVOICES, OFFSETS, ONE_TRANSACTION, RETURNS = RULES


BATCH = 20  # messages the job reads at a time: 60 confirmations are 3 transactions with invoices at least


ORDERS, CANCELLED_EVERY = 90, 3  # every 3rd order of a partition is cancelled: 60 confirmed, 30 not


SALE = 2**31 - 18  # the check's orders belong to a sale of their own


RUNS = (("before", 2), ("after", 1), None, None)  # killed inside its 2nd commit; just after its 1st; to the end; again


STEPS = {
    "A": "the job killed inside its second commit with invoices, started again and killed just after a commit, "
         "then started again to the end",
    "B": "what a `read_committed` reader sees: one invoice for each `order.confirmed`, nothing else, none twice",
    "C": "the job run once more, with nothing left to invoice: no invoice more",
    "D": "what `invoice_batch` returned, batch after batch",
}


def orders(run: str, partitions: int) -> list[tuple[int, ev.Event]]:
    """The job's input, (partition, event) in the order written: each partition's orders created, then saved, then
    decided, its cancellations first, so that every partition ends with an order.confirmed."""
    layout: list[tuple[int, ev.Event]] = []
    for p in range(partitions):
        created = [ev.Event(type=ev.ORDER_CREATED, orderId=f"ex18-{run}-{i:03d}", userId=f"buyer-{run}-{i:03d}",
                            productId="FLASH_SALE_PRODUCT_001", quantity=1 + i % 2, saleId=SALE, priceCents=119_900)
                   for i in range(p, ORDERS, partitions)]
        cancelled = created[::CANCELLED_EVERY]
        layout += [(p, e) for e in created]
        layout += [(p, e.next(ev.ORDER_SAVED)) for e in created]
        layout += [(p, e.next(ev.ORDER_CANCELLED, reason="SOLD_OUT")) for e in cancelled]
        layout += [(p, e.next(ev.ORDER_CONFIRMED)) for e in created if e not in cancelled]
    return layout

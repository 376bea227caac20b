"""Exercise 18's check, step by step, and the obvious answer its prediction starts from."""
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from flashsale import events as ev
from flashsale.lab.exercises import Wrong, expect, run_id, step
from flashsale.services import invoices

if TYPE_CHECKING:  # the job's process imports this module: it needs nothing of the stack's
    from flashsale.stack.control import Stack
from flashsale.lab.exercises.transactions.judge import judge_committed, judge_returns, never, unkilled
from flashsale.lab.exercises.transactions.rules import BATCH, ORDERS, RUNS, STEPS, orders
from flashsale.lab.exercises.transactions.run import _create_topics, _write, read_journal, run_job


def obvious(producer, source, messages, topic) -> int:
    """The obvious answer, and the subject of the notebook's prediction: the invoices in a transaction, and the
    offsets committed as the services commit theirs, by the consumer, once the invoices are safe."""
    producer.begin_transaction()
    out = invoices.invoices(invoices.decode(messages))
    for invoice in out:
        producer.produce(topic, invoice.to_json(), key=invoice.key)
    producer.commit_transaction()
    source.commit(asynchronous=False)
    return len(out)


def check(stack: "Stack", invoice_batch) -> None:
    settings, run = stack.wired(), run_id()
    names = {"source": f"ex18-orders-{run}", "topic": f"ex18-invoices-{run}", "group": f"ex18-{run}",
             "transactional.id": f"ex18-{run}", "journal": str(stack.home / "run" / f"ex18-{run}.journal")}
    Path(names["journal"]).parent.mkdir(parents=True, exist_ok=True)
    bootstrap, partitions = settings.kafka_bootstrap_servers, settings.partitions
    _create_topics(bootstrap, [names["source"], names["topic"]], partitions)
    layout = orders(run, partitions)
    _write(bootstrap, names["source"], layout)
    wanted = Counter(e.orderId for _, e in layout if e.type == ev.ORDER_CONFIRMED)
    print(f"  the job's input: {len(layout)} events of {ORDERS} orders, {sum(wanted.values())} of them confirmed, "
          f"read {BATCH} at a time")

    with step("A", STEPS["A"]):
        for n, crash in enumerate(RUNS[:3], 1):
            code = run_job(stack, names, invoice_batch, crash)
            journal = read_journal(names["journal"])
            if crash is None:
                expect(code == 0, f"the job failed (exit {code}); run it by hand to see why")
            elif code == 0:
                raise Wrong(f"run {n} of the job ran to its end without committing "
                            f"{'a second' if crash[1] == 2 else 'a'} transaction with invoices in it, though its "
                            f"input holds {sum(wanted.values())} confirmations, {BATCH} messages a batch: "
                            + unkilled(journal), never(journal))
        aborted = {i for line in journal if line["call"] == "killed" and line.get("before") for i in line["invoices"]}

    with step("B", STEPS["B"]):
        judge_committed(stack, names, journal, wanted, aborted)

    with step("C", STEPS["C"]):
        expect(run_job(stack, names, invoice_batch, RUNS[3]) == 0, "the job failed; run it by hand to see why")
        journal = read_journal(names["journal"])
        judge_committed(stack, names, journal, wanted, aborted, "the job run once more after its end")

    with step("D", STEPS["D"]):
        judge_returns(journal)
    print("All checks passed: a batch's invoices and its offsets commit together, or not at all.")

"""Exercise 18: one Kafka transaction per batch, in a job that is killed in the middle of one, and after one.

The learner writes `invoice_batch(producer, source, messages, topic) -> int`: the invoices of a batch of
order events, written to `topic`, and the consumer's offsets after the batch, in one transaction.

The check writes its own input before the job starts: 90 orders over the partitions, 60 confirmed and
30 cancelled, each partition ending with a confirmation; the job reads it 20 messages at a time, so 60
confirmations make three transactions with invoices at least, by construction. The job runs as notebook
08's does, in a process of its own (the function, defined in a notebook, handed to it by value with
cloudpickle), four times with the same transactional.id: killed with SIGKILL at its second commit of a
transaction with invoices (written, not committed); started again and killed just after its first such
commit; started again to the end; and started once more, when there is nothing left to invoice. Then a
read_committed reader must see one invoice for each order.confirmed, none for anything else, none twice.

The producer and the consumer the function is given are the real ones, which note each call in a journal:
what the learner's code did decides which rule a wrong count breaks, and what it returned. Apache Kafka
hides an aborted transaction's writes from read_committed readers; tansu 0.6 shows them (notebook 08).
On tansu the check leaves out the invoices of the transaction it killed, which it knows, and says so; the
rest, the kill after a commit and the run after the end included, is the same on both brokers.
"""
import builtins
import json
import os
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import cloudpickle
import confluent_kafka
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from flashsale import events as ev
from flashsale.adapters import kafka
from flashsale.brokers import FAST_CONSUMER
from flashsale.lab.exercises import Rule, Wrong, expect, run_id, short, step
from flashsale.services import invoices

if TYPE_CHECKING:  # the job's process imports this module: it needs nothing of the stack's
    from flashsale.stack.control import Stack

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


def job(bootstrap: str, partitions: int, names: dict, invoice_batch, crash: tuple[str, int] | None = None) -> None:
    """The loop of services/invoices.py, with the learner's `invoice_batch` for the work of each batch."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": names["transactional.id"]})
    producer.init_transactions(30)
    source = kafka.consumer(bootstrap, names["group"], **kafka.READ_COMMITTED)
    kafka.assign_from_committed(source, [TopicPartition(names["source"], p) for p in range(partitions)])
    journal = Journal(producer, source, Path(names["journal"]), crash)  # notes each call; kills at `crash`
    at_end: set[int] = set()
    try:
        while len(at_end) < partitions:
            messages = source.consume(BATCH, timeout=1)
            for m in messages:
                if (error := m.error()) is not None and error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(m.partition() or 0)
                elif not m.error():
                    at_end.discard(m.partition())
            batch = [m for m in messages if not m.error()]
            if batch:
                journal.returned(invoice_batch(journal.producer, journal.source, batch, names["topic"]))
    finally:
        source.close()


class Journal:
    """The job's producer and consumer as the learner's function gets them: the real ones, which note each call in a
    file, one JSON line each (written at once: a SIGKILL loses none). At `crash`, ("before", n) or ("after", n), the
    producer kills its own process at its n-th commit of a transaction with invoices in it: before the commit, its
    writes flushed (and their eventIds noted), or just after it."""

    def __init__(self, producer: Producer, source: Consumer, path: Path, crash: tuple[str, int] | None):
        self.path, self.crash, self.batch, self.commits = path, crash, 0, 0
        self.written: list[str] = []
        self.producer, self.source = _Watched(producer, self, "producer"), _Watched(source, self, "source")

    def note(self, call: str, **details) -> None:
        with open(self.path, "a") as journal:
            journal.write(json.dumps({"batch": self.batch, "call": call, **details}) + "\n")

    def returned(self, value) -> None:
        self.note("return", value=value if isinstance(value, int) else repr(value))
        self.batch += 1

    def called(self, real, role: str, name: str, args, kwargs):
        """One call of the learner's: noted, made, and at the crash point the process killed."""
        method = getattr(real, name)
        if role == "source":
            if name == "commit":
                self.note("consumer commit")
            return method(*args, **kwargs)
        if name == "begin_transaction":
            self.written = []
        elif name == "produce":
            value = args[1] if len(args) > 1 else kwargs.get("value", b"")
            topic = args[0] if args else kwargs.get("topic")
            self.written.append(_event_id(value))
            self.note("produce", topic=topic, key=_text(kwargs.get("key", args[2] if len(args) > 2 else None)))
        elif name == "send_offsets_to_transaction":
            given = args[0] if args else kwargs.get("positions", kwargs.get("offsets", []))
            position = self.source.position(self.source.assignment())
            try:
                self.note("offsets", given={tp.partition: tp.offset for tp in given},
                          position={tp.partition: tp.offset for tp in position})
            except (TypeError, AttributeError):  # not a list of TopicPartition: the call itself will say so
                self.note("offsets", given={}, position={})
        elif name == "commit_transaction" and self.written:
            self.commits += 1
            if self.crash == ("before", self.commits):
                real.flush(30)
                self.note("killed", before="commit", invoices=self.written)
                os.kill(os.getpid(), signal.SIGKILL)
        result = method(*args, **kwargs)
        if name in ("begin_transaction", "commit_transaction", "abort_transaction"):
            self.note(name.split("_")[0])
            if name == "commit_transaction" and self.written and self.crash == ("after", self.commits):
                self.note("killed", after="commit")
                os.kill(os.getpid(), signal.SIGKILL)
        return result


class _Watched:
    def __init__(self, real, journal: Journal, role: str):
        self._real, self._journal, self._role = real, journal, role

    def __getattr__(self, name: str):
        attribute = getattr(self._real, name)
        if not callable(attribute):
            return attribute
        return lambda *args, **kwargs: self._journal.called(self._real, self._role, name, args, kwargs)


def _event_id(value) -> str:
    try:
        return str(json.loads(value).get("eventId"))
    except (TypeError, ValueError, AttributeError):
        return ""


def _text(key) -> str | None:
    return key.decode(errors="replace") if isinstance(key, bytes) else None if key is None else str(key)


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


def judge_committed(stack: "Stack", names: dict, journal: list[dict], wanted: Counter, aborted: set[str],
                    after: str = "the kills") -> None:
    """What a read_committed reader sees: one invoice for each order.confirmed, nothing else, none twice. On a broker
    that shows an aborted transaction's writes (tansu 0.6), those of the transaction the check killed left out."""
    from flashsale.lab.transactions import HIDES_ABORTED

    settings = stack.wired()
    committed = _read(settings.kafka_bootstrap_servers, names["topic"], settings.partitions, "read_committed")
    shown_aborted = [m for m in committed if _event_id(m.value()) in aborted]
    if HIDES_ABORTED[settings.broker]:
        expect(not shown_aborted, f"read_committed shows {len(shown_aborted)} invoices of the killed transaction",
               ONE_TRANSACTION)
    elif shown_aborted and after == "the kills":
        print(f"  (tansu 0.6 shows read_committed readers the {len(shown_aborted)} invoices of the aborted "
              "transaction (notebook 08); they are left out below, as Apache Kafka leaves them out)")
    shown = [m for m in committed if _event_id(m.value()) not in aborted]
    judge_invoices(shown, wanted, journal, names["topic"])
    got = Counter(ev.Event.from_json(m.value() or b"").orderId for m in shown)
    missing, twice = wanted - got, got - wanted
    if missing or twice:
        what = (f"{sum(missing.values())} order.confirmed have no invoice ({short(missing)})" if missing else
                f"{sum(twice.values())} invoices too many ({short(twice)})")
        raise Wrong(f"read_committed, after {after}: {what}. " + diagnosis(journal, bool(missing)),
                    ONE_TRANSACTION if split(journal) else OFFSETS)
    print(f"  read_committed, after {after}: {sum(got.values())} invoices for {sum(wanted.values())} "
          "order.confirmed, each once")


def judge_invoices(messages: list, wanted: Counter, journal: list[dict], topic: str) -> None:
    """Rule 1: each invoice an invoice.issued, keyed by its orderId, for a confirmed order; none written elsewhere."""
    elsewhere = sorted({line["topic"] for line in journal if line["call"] == "produce" and line["topic"] != topic})
    expect(not elsewhere, f"invoice_batch wrote to {', '.join(map(str, elsewhere))}: the invoices go to `topic`, "
           f"the topic it is given ({topic})", INVOICES)
    for m in messages:
        try:
            invoice = ev.Event.from_json(m.value() or b"")
        except ValueError:
            raise Wrong(f"read_committed shows a message on the invoice topic that is not an event: {m.value()!r:.80}",
                        INVOICES) from None
        expect(invoice.type == ev.INVOICE_ISSUED, f"an {invoice.type} on the invoice topic: write invoice.issued "
               "events (invoices.invoices(events) makes them)", INVOICES)
        expect(invoice.orderId in wanted, f"an invoice for order {invoice.orderId}, which was never confirmed: "
               "invoice the order.confirmed events, and nothing else", INVOICES)
        expect(m.key() == invoice.orderId.encode(), f"an invoice keyed {m.key()!r}, not by its orderId "
               f"{invoice.orderId!r}: key=invoice.key, so that all of an order's events share a partition", INVOICES)


def judge_returns(journal: list[dict]) -> None:
    """Rule 4: each call returned the number of invoices it wrote (those of a killed call are not known)."""
    written: Counter = Counter()
    for line in journal:
        if line["call"] == "produce":
            written[line["batch"], line.get("run")] += 1
        elif line["call"] == "return":
            n = written[line["batch"], line.get("run")]
            expect(line["value"] == n, f"invoice_batch wrote {n} invoice{'s' * (n != 1)} and returned "
                   f"{line['value']}: return how many it wrote", RETURNS)


def split(journal: list[dict]) -> str:
    """Rule 3 broken, in what the journal shows: a call of invoice_batch that committed several transactions, or its
    invoices in one and its offsets in another ("" if none did)."""
    calls: dict[tuple, list[dict]] = {}
    for line in journal:
        calls.setdefault((line["run"], line["batch"]), []).append(line)
    for lines in calls.values():
        transactions: list[set[str]] = []
        for line in lines:
            if line["call"] == "begin":
                transactions.append(set())
            elif line["call"] in ("produce", "offsets") and transactions:
                transactions[-1].add(line["call"])
        if sum(line["call"] == "commit" for line in lines) > 1:
            return "several transactions for one batch"
        kinds = set().union(*transactions) if transactions else set()
        if kinds == {"produce", "offsets"} and {"produce", "offsets"} not in transactions:
            return "the invoices of a batch in one transaction, its offsets in another"
    return ""


def diagnosis(journal: list[dict], missing: bool) -> str:
    shape = split(journal)
    if shape:
        return (f"invoice_batch committed {shape}: killed between the two, the batch is half done. Begin one "
                "transaction, write the invoices, send the offsets, commit it")
    if any(line["call"] == "consumer commit" for line in journal):
        return ("The consumer committed offsets itself (source.commit): outside the transaction, they commit a batch "
                "whose invoices may never be" if missing else "The consumer committed the offsets itself "
                "(source.commit), after the transaction: killed in between, the batch is done twice") + \
            ". Commit them in the transaction: producer.send_offsets_to_transaction(...)"
    sent = [line for line in journal if line["call"] == "offsets"]
    if not sent:
        return ("No offsets were committed: a restarted job reads everything again. Commit them in the transaction: "
                "producer.send_offsets_to_transaction(source.position(source.assignment()), "
                "source.consumer_group_metadata())")
    off = next((line for line in sent if any(line["position"].get(p) != o for p, o in line["given"].items())), None)
    if off:
        position = {p: o for p, o in off["position"].items() if p in off["given"]}
        return (f"The offsets committed were {off['given']}, the consumer's position after the batch {position}: "
                "commit where the job will read next, source.position(source.assignment()), not the offsets of the "
                "last messages read")
    return "Commit the offsets after the batch in its transaction, with its invoices"


def never(journal: list[dict]) -> Rule:
    return INVOICES if not any(line["call"] == "produce" for line in journal) else ONE_TRANSACTION


def unkilled(journal: list[dict]) -> str:
    if not any(line["call"] == "produce" for line in journal):
        return "invoice_batch wrote no invoice (producer.produce(topic, ...))"
    return ("does invoice_batch begin and commit a transaction (producer.begin_transaction(), "
            "producer.commit_transaction())?")


def _cimpl() -> None:
    """confluent-kafka's classes say they live in a module `cimpl` that no import finds (TopicPartition.__module__):
    name it, so that a function using TopicPartition can be pickled, and unpickled in the job's process."""
    sys.modules.setdefault("cimpl", confluent_kafka.cimpl)


def run_job(stack: "Stack", names: dict, invoice_batch, crash: tuple[str, int] | None, timeout: float = 120) -> int:
    """The job in a process of its own, given the learner's function by value; its exit code. An exception in the job
    is raised here again: a KafkaException (a transaction misused) as Wrong, any other as its own type."""
    settings = stack.wired()
    _cimpl()
    module = sys.modules.get(getattr(invoice_batch, "__module__", "") or "")
    by_value = module is not None and module.__name__ != "__main__" and not module.__name__.startswith("flashsale")
    if by_value:  # a function of a module the job's process may not import (a test's): its code travels with it
        cloudpickle.register_pickle_by_value(module)
    try:
        payload = cloudpickle.dumps((settings.kafka_bootstrap_servers, settings.partitions, names, invoice_batch,
                                     crash))
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)
    with open(names["journal"], "a") as journal:
        journal.write(json.dumps({"batch": -1, "call": "run", "crash": crash}) + "\n")
    child = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    try:
        _, errors = child.communicate(payload, timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise Wrong(f"the job did not reach the end of its input in {timeout} s: does invoice_batch return?") from None
    said = errors.decode(errors="replace").strip().splitlines()
    failure = [line for line in said if line.startswith('{"kind": ')]
    if child.returncode not in (0, -signal.SIGKILL) and failure:
        kind, text, trace = json.loads(failure[-1]).values()
        if kind == "KafkaException":
            raise Wrong(f"the producer refused a call: {text}. One transaction per batch: begin_transaction(), the "
                        "writes, send_offsets_to_transaction(), commit_transaction()", ONE_TRANSACTION)
        error = getattr(builtins, kind, None)
        if isinstance(error, type) and issubclass(error, Exception):
            raise error(f"{text}\n\nin the job's process:\n{trace}")
        raise RuntimeError(f"the job stopped with {kind}: {text}\n\n{trace}")
    if child.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"the job's process died (exit {child.returncode}):\n" + "\n".join(said[-30:]))
    return child.returncode


def read_journal(path: str) -> list[dict]:
    """The journal's lines, each marked with the run of the job it belongs to."""
    lines, run = [], 0
    for text in Path(path).read_text().splitlines():
        line = json.loads(text)
        if line["call"] == "run":
            run += 1
        lines.append({**line, "run": run})
    return lines


def _job_process() -> None:
    """The job's process: read the job's arguments, run it; an exception goes to stderr as one JSON line."""
    _cimpl()
    bootstrap, partitions, names, invoice_batch, crash = cloudpickle.loads(sys.stdin.buffer.read())
    try:
        job(bootstrap, partitions, names, invoice_batch, crash)
    except BaseException as error:
        print(json.dumps({"kind": type(error).__name__, "text": str(error), "trace": traceback.format_exc()}),
              file=sys.stderr, flush=True)
        sys.exit(1)


def _create_topics(bootstrap: str, topics: list[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept until the answer: a dropped client cancels it
    for future in admin.create_topics([NewTopic(t, partitions, 1, config=kafka.TOPIC_CONFIG) for t in topics]).values():
        future.result(10)
    time.sleep(0.5)  # the new topics' partitions have leaders before a producer asks


def _write(bootstrap: str, topic: str, layout: list[tuple[int, ev.Event]]) -> None:
    """The job's input, each event on the partition the layout gives it; returns once the broker has them all."""
    producer, failures = kafka.reliable_producer(bootstrap), []
    for partition, event in layout:
        producer.produce(topic, event.to_json(), key=event.key, partition=partition,
                         on_delivery=lambda err, _: failures.extend([err] if err else []))
    if producer.flush(30) or failures:
        raise RuntimeError(f"the broker did not take the job's input: {failures or 'timed out'}")


def _read(bootstrap: str, topic: str, partitions: int, isolation: str, timeout: float = 30) -> list[Message]:
    """Every message of `topic` a reader with `isolation.level=<isolation>` gets, up to where it says "end"."""
    reader = kafka.consumer(bootstrap, f"ex18-reader-{uuid.uuid4()}", FAST_CONSUMER, **kafka.QUIET,
                            **{"isolation.level": isolation, "enable.partition.eof": True})
    try:
        reader.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        return [m for batch in kafka.read_to_end(reader, timeout, wait_s=0.5) for m in batch]
    finally:
        reader.close()


if __name__ == "__main__":
    _job_process()

"""The job of exercise 18, in a process of its own: it reads the input a batch at a time and hands each batch to the
learner's `invoice_batch`, with a producer and a consumer that note every call in a journal and kill the process
where the check says."""
import json
import os
import signal
import sys
import traceback
from pathlib import Path

import cloudpickle
import confluent_kafka
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from flashsale.adapters import kafka
from flashsale.lab.exercises.transactions.rules import BATCH


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


def _cimpl() -> None:
    """confluent-kafka's classes say they live in a module `cimpl` that no import finds (TopicPartition.__module__):
    name it, so that a function using TopicPartition can be pickled, and unpickled in the job's process."""
    sys.modules.setdefault("cimpl", confluent_kafka.cimpl)


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


if __name__ == "__main__":
    _job_process()

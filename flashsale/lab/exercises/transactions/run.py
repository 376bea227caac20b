"""Running exercise 18's job from the check: its topics, its input, the job's process and its journal, the reader."""
import builtins
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import cloudpickle
from confluent_kafka import Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from flashsale import events as ev
from flashsale.adapters import kafka
from flashsale.brokers import FAST_CONSUMER
from flashsale.lab.exercises import Wrong

if TYPE_CHECKING:  # the job's process imports this module: it needs nothing of the stack's
    from flashsale.stack.control import Stack
from flashsale.lab.exercises.transactions.job import _cimpl
from flashsale.lab.exercises.transactions.rules import ONE_TRANSACTION

# The job's process: the job module's entry, imported (run with -m, the package, which imports it, would run it twice)
JOB = "from flashsale.lab.exercises.transactions.job import _job_process; _job_process()"


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
    child = subprocess.Popen([sys.executable, "-c", JOB], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
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

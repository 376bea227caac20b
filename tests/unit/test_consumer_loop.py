"""The consumer loop's failure paths, with fakes for its four parts (no broker): what is retried, what is isolated,
what is dead-lettered, and that nothing is committed before its output is stored.

The same loop against a real broker is in tests/integration/test_dead_letters.py and test_faults.py.
"""
import os
import signal
import time
from dataclasses import dataclass, field

import pytest
from confluent_kafka import KafkaError, KafkaException

from flashsale import events as ev
from flashsale.adapters.dead_letters import Postponed, Record
from flashsale.adapters.kafka import ConsumerLoop, FatalConsumerError, StopSignal
from flashsale.services.runner import serve


@dataclass
class Message:
    """The part of confluent_kafka.Message the loop reads."""
    _value: bytes | None
    _offset: int

    def topic(self): return ev.ORDER_EVENTS
    def partition(self): return 0
    def offset(self): return self._offset
    def key(self): return b"k"
    def value(self): return self._value
    def error(self): return None


def created(order_id: str, offset: int) -> Message:
    event = ev.Event(type=ev.ORDER_CREATED, orderId=order_id, userId="u", productId="P", quantity=1, saleId=1)
    return Message(event.to_json(), offset)


@dataclass
class Log:
    """What the parts were asked to do, in order: ("publish", ...), ("commit", ...), ("rewind", ...)."""
    calls: list[tuple] = field(default_factory=list)

    def of(self, kind: str) -> list:
        return [call[1] for call in self.calls if call[0] == kind]


class Source:
    """Hands out the partition's messages from its position on; the loop stops once all are committed."""

    def __init__(self, log: Log, stop: StopSignal, messages: list[Message]):
        self.log, self.stop, self.messages, self.position, self.closed = log, stop, messages, 0, False
        self.reads = 0

    def next_batch(self):
        self.reads += 1
        assert self.reads < 100, "the loop never got past its batch"
        batch = self.messages[self.position:]
        self.position = len(self.messages)
        return batch

    def commit_after(self, messages):
        self.log.calls.append(("commit", [m.offset() for m in messages]))
        if messages[-1] is self.messages[-1]:
            self.stop.set()

    def joined(self):
        return True

    def close(self):
        self.closed = True


class Owner:
    """Owns the one partition; a rewind seeks the source back to the failed batch's first message."""

    def __init__(self, log: Log):
        self.log = log

    def take(self, source, topics):
        self.log.calls.append(("take", topics))

    def admit(self, source, messages):
        return messages

    def rewind(self, source, messages):
        self.log.calls.append(("rewind", [m.offset() for m in messages]))
        source.position = source.messages.index(messages[0])


class Sink:
    """Stores what is published, or refuses it the first `refusals` times, as a broker that is away would."""

    def __init__(self, log: Log, refusals: int = 0):
        self.log, self.refusals, self.closed = log, refusals, False

    def publish(self, records):
        records = list(records)
        if self.refusals:
            self.refusals -= 1
            raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "not acknowledged"))
        self.log.calls.append(("publish", records))

    def close(self):
        self.closed = True


def run(messages: list[Message], handle, attempts: int = 3, refusals: int = 0) -> tuple[Log, Source, Sink]:
    log, stop = Log(), StopSignal()
    source, sink = Source(log, stop, messages), Sink(log, refusals)
    ConsumerLoop(source, sink, Owner(log), stop, attempts=attempts, pause_s=0).run([ev.ORDER_EVENTS], handle)
    return log, source, sink


def saved(batch: list[ev.Event]) -> list[ev.Event]:
    return [e.next(ev.ORDER_SAVED) for e in batch]


def test_a_batch_is_published_before_its_offsets_are_committed_and_both_parts_are_closed():
    log, source, sink = run([created("a", 0), created("b", 1)], saved)
    assert [kind for kind, _ in log.calls] == ["take", "publish", "commit"]
    assert [e.orderId for e in log.of("publish")[0]] == ["a", "b"] and log.of("commit") == [[0, 1]]
    assert source.closed and sink.closed


def test_an_outage_is_waited_out_however_long_it_lasts_and_nothing_is_dead_lettered():
    outage = iter(range(7))  # more failures in a row than `attempts`: an outage is nobody's dead letter

    def handle(batch):
        if next(outage, None) is not None:
            raise Postponed("the payment provider is down")
        return saved(batch)

    log, _, _ = run([created("a", 0), created("b", 1)], handle, attempts=3)
    assert log.of("rewind") == [[0, 1]] * 7 and log.of("commit") == [[0, 1]]
    [published] = log.of("publish")
    assert [e.orderId for e in published] == ["a", "b"]  # the whole batch, never one at a time


def test_a_bug_is_retried_then_its_batch_handled_one_event_at_a_time_and_only_the_failing_one_dead_lettered():
    calls = []

    def handle(batch):
        calls.append([e.orderId for e in batch])
        if any(e.orderId == "bad" for e in batch):
            raise ValueError("no such column")
        return saved(batch)

    log, _, _ = run([created("a", 0), created("bad", 1), created("c", 2)], handle, attempts=3)
    assert calls[:3] == [["a", "bad", "c"]] * 3  # `attempts` tries of the batch
    assert calls[3:] == [["a"], ["bad"], ["bad"], ["bad"], ["c"]]  # then each on its own, `attempts` tries each
    [published] = log.of("publish")
    dead = [r for r in published if isinstance(r, Record)]
    assert [r.headers["offset"] for r in dead] == ["1"] and dead[0].topic == ev.dead_letter_topic(ev.ORDER_EVENTS)
    assert "ValueError: no such column" in str(dead[0].headers["error"])
    assert [e.orderId for e in published if isinstance(e, ev.Event)] == ["a", "c"]
    assert log.of("commit") == [[0, 1, 2]]


def test_a_bug_costs_the_batch_its_isolation_only_after_attempts_failures_in_a_row():
    failures = iter([True, True, False])  # two failures, then the batch goes through whole

    def handle(batch):
        if next(failures, False):
            raise ValueError("flaky")
        return saved(batch)

    log, _, _ = run([created("a", 0), created("b", 1)], handle, attempts=3)
    [published] = log.of("publish")
    assert [e.orderId for e in published] == ["a", "b"] and not [r for r in published if isinstance(r, Record)]


def test_a_message_that_is_not_an_event_is_dead_lettered_with_its_batch_and_the_rest_handled():
    log, _, _ = run([created("a", 0), Message(b"{not json", 1), created("c", 2)], saved)
    [published] = log.of("publish")
    assert [r.value for r in published if isinstance(r, Record)] == [b"{not json"]
    assert [e.orderId for e in published if isinstance(e, ev.Event)] == ["a", "c"]
    assert log.of("commit") == [[0, 1, 2]]


def test_nothing_is_committed_while_the_broker_does_not_acknowledge_the_output():
    log, _, _ = run([created("a", 0)], saved, refusals=2)
    assert [kind for kind, _ in log.calls] == ["take", "rewind", "rewind", "publish", "commit"]


def test_a_failing_publish_counts_as_a_failure_and_isolates_no_good_event():
    log, _, _ = run([created("a", 0)], saved, attempts=2, refusals=4)
    [published] = log.of("publish")
    assert [e.orderId for e in published] == ["a"]  # isolated, it publishes on its own: still no dead letter


def test_sigterm_while_a_batch_is_handled_stops_the_loop_after_that_batch_and_gives_the_handler_back():
    before = signal.getsignal(signal.SIGTERM)
    log, stop = Log(), StopSignal()

    def terminated(events):
        os.kill(os.getpid(), signal.SIGTERM)  # as `flashsale kill --signal TERM` would
        return saved(events)

    source = Source(log, StopSignal(), [created("a", 0), created("b", 1)])  # a source that never stops it
    sink = Sink(log)
    ConsumerLoop(source, sink, Owner(log), stop, pause_s=0).run([ev.ORDER_EVENTS], terminated)
    assert stop.stopped and log.of("commit") == [[0, 1]]  # the batch being handled when the signal came is finished
    assert source.closed and sink.closed
    assert signal.getsignal(signal.SIGTERM) == before


def test_sigterm_while_the_loop_waits_for_events_ends_the_wait_at_once_and_commits_nothing_of_it():
    before = signal.getsignal(signal.SIGTERM)
    log, stop = Log(), StopSignal()

    class Waiting(Source):
        def next_batch(self):
            os.kill(os.getpid(), signal.SIGTERM)  # comes while librdkafka (or the bell) waits
            time.sleep(5)  # a wait the signal must end
            return super().next_batch()

    source, sink = Waiting(log, StopSignal(), [created("a", 0)]), Sink(log)
    started = time.monotonic()
    ConsumerLoop(source, sink, Owner(log), stop, pause_s=0).run([ev.ORDER_EVENTS], saved)
    assert time.monotonic() - started < 1
    assert stop.stopped and log.of("commit") == [] and log.of("publish") == []  # the next owner reads it
    assert source.closed and sink.closed
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_fatal_consumer_error_stops_the_loop_and_closes_its_parts():
    log = Log()

    class Fenced(Source):
        def next_batch(self):
            raise FatalConsumerError("fatal consumer error: fenced")  # what kafka.failed raises for a fatal one

    source, sink = Fenced(log, StopSignal(), []), Sink(log)
    with pytest.raises(FatalConsumerError):
        ConsumerLoop(source, sink, Owner(log), StopSignal(), pause_s=0).run([ev.ORDER_EVENTS], saved)
    assert source.closed and sink.closed and not log.of("commit")


def test_a_fatal_error_on_commit_ends_the_loop_at_once_instead_of_retrying_a_batch_it_can_never_commit():
    log = Log()

    class FencedOnCommit(Source):
        def commit_after(self, messages):
            self.log.calls.append(("commit", [m.offset() for m in messages]))
            raise FatalConsumerError("fatal consumer error on commit: FENCED_INSTANCE_ID")

    source = FencedOnCommit(log, StopSignal(), [created("a", 0)])
    with pytest.raises(FatalConsumerError):
        ConsumerLoop(source, Sink(log), Owner(log), StopSignal(), pause_s=0).run([ev.ORDER_EVENTS], saved)
    assert len(log.of("commit")) == 1 and not log.of("rewind")


def test_a_fenced_service_rejoins_with_a_new_loop_and_goes_on_until_stopped():
    built: list[str] = []

    class Loop:
        def __init__(self, fenced: bool):
            self.fenced = fenced

        def run(self, topics, handle, timer=None):
            if self.fenced:
                raise FatalConsumerError("fatal consumer error: fenced")

    def build():
        built.append("loop")
        return Loop(fenced=len(built) < 3)  # fenced twice, then it runs until SIGTERM

    serve(build, [ev.ORDER_EVENTS], saved, pause_s=0)
    assert built == ["loop"] * 3


def test_a_service_fenced_again_and_again_stops_instead_of_rejoining_for_ever():
    built: list[str] = []

    class Fenced:
        def run(self, topics, handle, timer=None):
            built.append("loop")
            raise FatalConsumerError("fatal consumer error: fenced")

    with pytest.raises(FatalConsumerError):
        serve(Fenced, [ev.ORDER_EVENTS], saved, rejoins=3, within_s=60, pause_s=0)
    assert len(built) == 4  # three rejoins, and the fourth fence is raised


class Deadline:
    """A timer with one expiry due at its first tick: what it was told was announced, and how often it ran."""

    def __init__(self, fails: int = 0):
        self.fails, self.ticks, self.told = fails, 0, []
        self.pending = [ev.Event(type=ev.ORDER_EXPIRED, orderId="late", userId="u", productId="P", quantity=1,
                                 saleId=1, reason=ev.PAYMENT_TIMEOUT_REASON)]

    def due(self):
        self.ticks += 1
        if self.fails:
            self.fails -= 1
            raise Postponed("PostgreSQL is unavailable")
        return list(self.pending)

    def announced(self, events):
        self.told += events
        self.pending = []


def run_with(timer, messages, refusals: int = 0) -> Log:
    """The loop runs until its messages are committed and the timer was told its expiry was announced."""
    log, stop = Log(), StopSignal()

    class UntilAnnounced(Source):
        def next_batch(self):
            if log.of("commit") and timer.told:
                stop.set()
            return super().next_batch()

    ConsumerLoop(UntilAnnounced(log, StopSignal(), messages), Sink(log, refusals), Owner(log), stop,
                 pause_s=0).run([ev.ORDER_EVENTS], saved, timer)
    return log


def test_a_timers_due_events_are_published_between_batches_and_only_then_marked_announced():
    timer = Deadline()
    log = run_with(timer, [created("a", 0)])
    published = [[e.orderId for e in records] for records in log.of("publish")]
    assert published == [["late"], ["a"]] and [e.orderId for e in timer.told] == ["late"]


def test_an_announcement_the_broker_refuses_is_not_marked_and_is_published_again_at_the_next_tick():
    timer = Deadline()
    log = run_with(timer, [created("a", 0), created("b", 1)], refusals=1)  # the timer's first publish is refused
    assert [e.orderId for e in timer.told] == ["late"] and timer.ticks >= 2
    assert [[e.orderId for e in records] for records in log.of("publish")] == [["a", "b"], ["late"]]


def test_a_timer_that_fails_does_not_stop_the_loop_and_runs_again():
    timer = Deadline(fails=1)
    log = run_with(timer, [created("a", 0)])
    assert timer.ticks >= 2 and log.of("commit") == [[0]]
    assert [e.orderId for e in timer.told] == ["late"]

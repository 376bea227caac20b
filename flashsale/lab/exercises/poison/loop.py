"""Exercise 13's consumer loop: run_consumer's, with the learner's function, judging each call as it returns.

What came back is compared with the batch given, and what was produced on the producer given (a real producer that
also keeps a note of each message): the dead letters must be there before the loop flushes and commits, not later,
not on a producer of the learner's own. Once, a batch fails after the learner's function ran (as if its handler's
database write failed), and comes again: it must give the same events again.
"""
import time

from confluent_kafka import Producer
from pydantic import ValidationError

from flashsale import events as ev
from flashsale.adapters import kafka
from flashsale.lab.exercises import Wrong, expect, short
from flashsale.lab.exercises.poison.rules import AS_IT_WAS, DEAD_LETTERS, EVENTS, TOPICS
from flashsale.settings import Settings


class NotingProducer(Producer):
    """A real producer that also keeps a note of each message it is given: (topic, key, value, headers)."""

    def __init__(self, config: dict):
        super().__init__(config)
        self.noted: list[tuple[str, bytes | None, bytes | None, object]] = []

    def produce(self, topic, value=None, key=None, *args, **kwargs):
        super().produce(topic, value, key, *args, **kwargs)
        self.noted.append((topic, _bytes(key), _bytes(value), kwargs.get("headers")))


class Loop:
    """run_consumer's loop, with the learner's function, judging each call."""

    def __init__(self, settings: Settings, group: str, decode, good: dict[str, ev.Event], bad: dict[str, bytes | None]):
        self.settings, self.group, self.decode, self.good, self.bad = settings, group, decode, good, bad
        self.producer = NotingProducer({"bootstrap.servers": settings.kafka_bootstrap_servers, "acks": "all",
                                        "enable.idempotence": True, "linger.ms": 5})
        self.calls, self.retried = 0, False
        self.failed: set[tuple] = set()  # where the messages of a failed batch are: given again, they judge step B
        self.handled: set[str] = set()
        self.dead_lettered: set[str] = set()
        self.headers: list[bool] = []

    def run(self, timeout: float) -> None:
        settings = self.settings.model_copy(update={"instance": 0, "instances": 1})  # the group's only consumer
        source = kafka.member(settings, self.group, log_level=0)
        owner = kafka.ownership(settings)
        owner.take(source, list(TOPICS))
        failures, deadline = 0, time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and not (self.handled >= self.good.keys()
                                                       and self.dead_lettered >= self.bad.keys()):
                messages = owner.admit(source, [m for m in source.consume(100, timeout=0.2) if not m.error()])
                if not messages:
                    continue
                retry = any(_where(m) in self.failed for m in messages)
                try:
                    events = self.call(messages, retry)
                except (NotImplementedError, Wrong):
                    raise
                except Exception as error:
                    failures += 1
                    if failures == 3:
                        raise Wrong(_stuck(messages, error), DEAD_LETTERS) from None
                    self.failed |= {_where(m) for m in messages}
                    owner.rewind(source, messages)
                    continue
                expect(self.producer.flush(10) == 0, "the dead letters were not acknowledged by the broker")
                if events and not self.retried:  # the handler's database write fails, once: the batch comes again
                    self.retried = True
                    self.failed |= {_where(m) for m in messages}
                    owner.rewind(source, messages)
                    continue
                self.handled |= {e.eventId for e in events}
                source.commit(offsets=kafka.after(messages), asynchronous=False)
                failures = 0
        finally:
            source.close()
        missing = self.good.keys() - self.handled
        expect(not missing, f"{len(missing)} good events were never handled in {timeout:g} s "
               f"({short(sorted(self.good[e].orderId for e in missing))})", EVENTS)

    def call(self, messages, retry: bool) -> list[ev.Event]:
        """The learner's function on one batch, and what must hold when it returns."""
        noted = len(self.producer.noted)
        events = self.decode(messages, self.producer)
        self.calls += 1
        try:
            self._judge(messages, events, self.producer.noted[noted:], retry)
        except Wrong as wrong:
            wrong.step = "B" if retry else "A"
            raise
        return events

    def _judge(self, messages, events, produced, retry: bool) -> None:
        again = " (the batch came again, after it failed)" if retry else ""
        expect(isinstance(events, list) and all(isinstance(e, ev.Event) for e in events), "your function must return "
               f"a list of Event objects (ev.Event.model_validate_json(message.value())); it returned {events!r}"[:400],
               EVENTS)
        wanted = [e for e in map(_decoded, messages) if e is not None]
        got = [e.eventId for e in events]
        if got != [e.eventId for e in wanted]:
            lost = [e for e in wanted if e.eventId not in got]
            raise Wrong(f"a batch of {len(messages)} messages{again}, {len(wanted)} of them good events, and your "
                        f"function returned {len(events)} events" + (
                            f": {len(lost)} missing ({short(f'{e.type} of {e.orderId}' for e in lost)})" if lost else
                            ", not in the batch's order") + ". Return an Event for every message that decodes, in "
                        "order, every time you are given it" + ("; remember nothing of what you decoded before"
                                                               if retry else ""), EVENTS)
        good = {_key(m) for m in messages if _decoded(m) is not None}
        for _, key, _, _ in produced:
            name = (key or b"").decode(errors="replace")
            expect(name not in good, f"your function dead-lettered the good event {name}: only what cannot be read "
                   "goes there", DEAD_LETTERS)
        for m in messages:
            key = _key(m)
            if _decoded(m) is not None:
                continue
            dead = ev.dead_letter_topic(m.topic())
            mine = [(t, k, v, h) for t, k, v, h in produced if k == m.key()]
            if not mine and key in self.dead_lettered:
                continue  # dead-lettered on an earlier try of this batch: once is enough
            if not mine:
                renamed = [k for t, k, v, _ in produced if t == dead and v == m.value()]
                if renamed:
                    raise Wrong(f"the poison message {key} went to {dead} with the key {renamed[0]!r}; a dead letter "
                                f"keeps its message's own key, {m.key()!r}", AS_IT_WAS)
                raise Wrong(f"your function returned{again} without producing the poison message {key} "
                            f"({m.topic()}[{m.partition()}]@{m.offset()}) to {dead} on the producer it was given: "
                            "produce each one there before you return (the loop flushes that producer, then commits "
                            "the batch; a dead letter produced later, or elsewhere, is lost if the process dies)",
                            DEAD_LETTERS)
            topic, _, value, headers = mine[0]
            expect(topic == dead, f"the poison message {key} of {m.topic()} went to {topic}; it belongs on its own "
                   f"topic's dead-letter topic, {dead} (ev.dead_letter_topic(message.topic()))", DEAD_LETTERS)
            expect(value == m.value(), f"dead letters must keep the original bytes, to be inspected and replayed; "
                   f"{key} was {m.value()!r} and your dead letter is {value!r}", AS_IT_WAS)
            self.dead_lettered.add(key)
            self.headers.append(bool(headers))


def _bytes(value) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _key(message) -> str:
    return (message.key() or b"").decode(errors="replace")


def _where(message) -> tuple:
    return message.topic(), message.partition(), message.offset()


def _decoded(message) -> ev.Event | None:
    """The event a message holds, or None if it is poison: what the learner's function must tell apart."""
    try:
        return ev.Event.model_validate_json(message.value() or b"")
    except ValidationError:
        return None


def _stuck(messages, error: Exception) -> str:
    first = messages[0]
    return (f"the consumer is stuck: your function raised {type(error).__name__} ({str(error).splitlines()[0][:120]}) "
            f"on a batch from {first.topic()}[{first.partition()}]@{first.offset()}, three times. The loop retries a "
            "failed batch from its start, so it meets the same poison message forever and the partition stops. "
            "Catch the error for that message, produce it to the dead-letter topic, and go on with the next one.")

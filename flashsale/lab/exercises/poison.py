"""Exercise 13: a poison message is dead-lettered, and the consumer keeps consuming.

The learner writes `decode_or_dead_letter(messages, producer) -> list[Event]`. The check
writes good events and poison messages to two topics of the real broker (its own, so that
no service's consumer dead-letters them first), then runs a consumer loop like
`adapters.kafka.run_consumer` over both with the learner's function: decode, handle, wait
for the broker's acknowledgements, commit; on an error, seek back and retry the batch. Its
consumer takes the partitions as the services do: a group member on Apache Kafka.

After each call the check compares what came back with the batch it gave, and what was
produced on the producer it gave (a real producer that also keeps a note of each message):
the dead letters must be there before the loop flushes and commits, not later, not on a
producer of the learner's own. Once, a batch fails after the learner's function ran (as if
its handler's database write failed), and comes again: it must give the same events again.
"""
import logging
import time
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from pydantic import ValidationError

from flashsale import events as ev
from flashsale.adapters import kafka
from flashsale.lab.exercises import Rule, Wrong, expect, run_id, short, step
from flashsale.lab.exercises.log import ends, read_since
from flashsale.settings import Settings

if TYPE_CHECKING:
    from flashsale.stack.control import Stack

log = logging.getLogger(__name__)
TOPICS = ("exercise13.order.events", "exercise13.inventory.events")
DEAD = tuple(ev.dead_letter_topic(t) for t in TOPICS)
TOPIC = TOPICS[0]
RULES = (
    Rule(1, "Return, in order, an `Event` for every message that decodes, each time you are given it: the loop gives "
            "a failed batch again."),
    Rule(2, "Produce every message that does not decode, and only those, to its own topic's dead-letter topic, "
            "`ev.dead_letter_topic(message.topic())`, on the `producer` you are given, before you return: the loop "
            "flushes that producer, then commits."),
    Rule(3, "A dead letter keeps its message's key and its original bytes, so that it can be inspected and "
            "replayed."),
)
EVENTS, DEAD_LETTERS, AS_IT_WAS = RULES
STEPS = {
    "A": "each batch of 300 good events and 6 poison messages, on two topics, as your function returns it",
    "B": "a batch that failed after your function ran, given to it again",
    "C": "the dead-letter topics, read back from the broker",
}


def skips_the_poison(messages, producer) -> list[ev.Event]:
    """The obvious answer, and the subject of the notebook's prediction: what cannot be read is skipped."""
    events = []
    for message in messages:
        try:
            events.append(ev.Event.model_validate_json(message.value() or b""))
        except ValidationError as error:
            log.info("skipped a message no one can read: %s", error)
    return events


def poison(run: str) -> dict[str, bytes | None]:
    """Messages no consumer can turn into an Event, by key: each one a way real producers go wrong."""
    good = ev.Event(type=ev.ORDER_CREATED, orderId="x", userId="mallory", productId="P", quantity=1, saleId=1)
    return {f"{run}-not-json": b"order for mallory, 1 phone",
            f"{run}-empty-object": b"{}",
            f"{run}-missing-fields": b'{"type": "order.created", "orderId": "x"}',
            f"{run}-nul-in-user": good.model_copy(update={"userId": "mal\x00lory"}).to_json(),
            f"{run}-huge-quantity": good.to_json().replace(b'"quantity":1', b'"quantity":1099511627776'),
            f"{run}-no-value": None}


def good_events(run: str, orders: int, product: str) -> list[ev.Event]:
    """Three events an order: order.created and order.saved on one topic, inventory.reserved on the other."""
    events = []
    for i in range(orders):
        created = ev.Event(type=ev.ORDER_CREATED, orderId=f"{run}-order-{i:04d}", userId=f"buyer-{i:04d}",
                           productId=product, quantity=1 + i % 2, saleId=1)
        events += [created, created.next(ev.ORDER_SAVED), created.next(ev.STOCK_RESERVED, availableStock=99)]
    return events


def check(stack: "Stack", decode_or_dead_letter, orders: int = 100, timeout: float = 60) -> None:
    settings, run = stack.wired(), run_id()
    bad = poison(run)
    events = good_events(run, orders, settings.product_id)
    create_topics(settings.kafka_bootstrap_servers, settings.partitions)
    since = {topic: ends(settings, topic) for topic in (*TOPICS, *DEAD)}
    group = f"exercise13-{run}"
    start_at(settings, group, {topic: since[topic] for topic in TOPICS})  # this run's messages, not the last run's
    producer = kafka.reliable_producer(settings.kafka_bootstrap_servers)
    topic_of = {}
    step_, queue = max(1, len(events) // len(bad)), list(bad.items())
    for i, event in enumerate(events):
        producer.produce(TOPICS[event.topic == ev.INVENTORY_EVENTS], event.to_json(), key=event.orderId)
        if i % step_ == step_ // 2 and queue:
            key, value = queue.pop()
            topic_of[key] = TOPICS[len(queue) % 2]
            producer.produce(topic_of[key], value, key=key)
    expect(producer.flush(10) == 0, "the broker did not take the test messages")

    loop = Loop(settings, group, decode_or_dead_letter, {e.eventId: e for e in events}, bad)
    with step("A", STEPS["A"]):
        loop.run(timeout)
        print(f"  the consumer went past {len(bad)} poison messages and handled all {len(events)} good events, "
              f"in {loop.calls} calls")
    with step("B", STEPS["B"]):
        expect(loop.retried, "the check's loop never failed a batch (it fails the first with events): the check "
               "is wrong")

    with step("C", STEPS["C"]):
        dead: dict[str, list] = {}
        for topic in DEAD:
            for m in read_since(settings, topic, since[topic]):
                dead.setdefault((m.key() or b"").decode(), []).append((topic, m.value()))
        innocent = [key for key in dead if key.startswith(run) and key not in bad]
        expect(not innocent, f"good events are on the dead-letter topics ({short(innocent)}): only what cannot be "
               "read goes there", DEAD_LETTERS)
        for key, value in bad.items():
            home = ev.dead_letter_topic(topic_of[key])
            expect(key in dead, f"the poison message {key[len(run) + 1:]} is not on {home}: produce each one there, "
                   "with its key, so someone can look at it later", DEAD_LETTERS)
            kept = [(topic, v) for topic, v in dead[key] if topic == home]
            expect(kept, f"the poison message {key[len(run) + 1:]} of {topic_of[key]} is on "
                   f"{dead[key][0][0]}, not on its own topic's dead-letter topic", DEAD_LETTERS)
            expect(all(v == value for _, v in kept), f"dead letters must keep the original bytes; "
                   f"{key[len(run) + 1:]} was {value!r} and is {kept[0][1]!r}", AS_IT_WAS)
        print(f"  all {len(bad)} poison messages are on their topics' dead-letter topics, byte for byte, and nothing "
              "else is")
    if not all(loop.headers):
        print("  tip: a header saying why (headers={'error': ...}) saves the on-call engineer a guess")
    print("All checks passed: compare with flashsale.adapters.kafka.decode_or_dead_letter, which returns its dead "
          "letters instead: the loop publishes them with the handler's output, and commits only once the broker "
          "has acknowledged each one (a flush returns 0 even when a delivery failed).")


def start_at(settings: Settings, group: str, ends: dict[str, dict[int, int]]) -> None:
    """The group's offsets where the topics end now: its consumer starts with this run's messages (on tansu, maybe
    a few before them: its ends can be reported short, see lab.replay)."""
    client = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group,
                       "enable.auto.commit": False})
    try:
        offsets = [TopicPartition(topic, p, end) for topic, partitions in ends.items() for p, end in partitions.items()
                   if end > 0]
        if offsets:
            client.commit(offsets=offsets, asynchronous=False)
    finally:
        client.close()


def create_topics(bootstrap: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=10).topics
    new = [NewTopic(t, partitions, 1) for t in (*TOPICS, *DEAD) if t not in existing]
    for future in (admin.create_topics(new).values() if new else []):
        future.result(10)


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

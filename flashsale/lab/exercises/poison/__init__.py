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
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from pydantic import ValidationError

from flashsale import events as ev
from flashsale.adapters import kafka
from flashsale.lab.exercises import expect, run_id, short, step
from flashsale.lab.exercises.log import ends, read_since
from flashsale.lab.exercises.poison.loop import Loop
from flashsale.lab.exercises.poison.rules import AS_IT_WAS, DEAD, DEAD_LETTERS, RULES, STEPS, TOPIC, TOPICS
from flashsale.settings import Settings

if TYPE_CHECKING:
    from flashsale.stack.control import Stack

log = logging.getLogger(__name__)

__all__ = ["RULES", "STEPS", "TOPIC", "check", "poison", "skips_the_poison"]


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

"""Exercise 13: a poison message is dead-lettered, and the consumer keeps consuming.

The learner writes `decode_or_dead_letter(messages, producer) -> list[Event]`. The check
writes good events and poison messages to a topic of the real broker (its own, so that
no service's consumer dead-letters them first), then runs a consumer loop like
`adapters.kafka.run_consumer` with the learner's function: decode, handle, wait for the
broker's acknowledgements, commit; on an error, seek back and retry the batch. Its
consumer takes the partitions as the services do: a group member on Apache Kafka.
"""
import time

from confluent_kafka.admin import AdminClient, NewTopic

from flashsale import events as ev
from flashsale.adapters import kafka
from flashsale.lab.exercises import Wrong, expect, passed, run_id, short
from flashsale.lab.replay import read_topic
from flashsale.settings import Settings
from flashsale.stack.control import Stack

TOPIC = "exercise13.order.events"
DEAD = ev.dead_letter_topic(TOPIC)


def poison(run: str) -> dict[str, bytes | None]:
    """Messages no consumer can turn into an Event, by key: each one a way real producers go wrong."""
    good = ev.Event(type=ev.ORDER_CREATED, orderId="x", userId="mallory", productId="P", quantity=1, saleId=1)
    return {f"{run}-not-json": b"order for mallory, 1 phone",
            f"{run}-empty-object": b"{}",
            f"{run}-missing-fields": b'{"type": "order.created", "orderId": "x"}',
            f"{run}-nul-in-user": good.model_copy(update={"userId": "mal\x00lory"}).to_json(),
            f"{run}-huge-quantity": good.to_json().replace(b'"quantity":1', b'"quantity":1099511627776'),
            f"{run}-no-value": None}


def check(stack: Stack, decode_or_dead_letter, good: int = 300, timeout: float = 60) -> None:
    settings, run = stack.wired(), run_id()
    bad = poison(run)
    events = [ev.Event(type=ev.ORDER_CREATED, orderId=f"{run}-order-{i:04d}", userId=f"buyer-{i:04d}",
                       productId=settings.product_id, quantity=1, saleId=1) for i in range(good)]
    create_topics(settings.kafka_bootstrap_servers, settings.partitions)
    producer = kafka.reliable_producer(settings.kafka_bootstrap_servers)
    step, queue = good // len(bad), list(bad.items())
    for i, event in enumerate(events):
        producer.produce(TOPIC, event.to_json(), key=event.orderId)
        if i % step == step // 2 and queue:
            key, value = queue.pop()
            producer.produce(TOPIC, value, key=key)
    expect(producer.flush(10) == 0, "the broker did not take the test messages")

    handled = consume(settings, f"exercise13-{run}", decode_or_dead_letter, {e.orderId for e in events}, producer,
                      timeout)
    expect(all(isinstance(e, ev.Event) for e in handled), "your function must return Event objects "
           "(ev.Event.model_validate_json(message.value()))")
    mine = {e.orderId for e in handled if e.orderId.startswith(run)}
    missing = {e.orderId for e in events} - mine
    expect(not missing, f"{len(missing)} good events were never handled ({short(sorted(missing))}): a poison message "
           "must not take its batch with it; decode each message on its own")
    passed(f"the consumer went past {len(bad)} poison messages and handled all {good} good events")

    dead = {raw_key.decode(): m for m in read_topic(settings, DEAD)
            if (raw_key := m.key()) and raw_key.decode().startswith(run)}
    lost = [key for key in bad if key not in dead]
    expect(not lost, f"{len(lost)} poison messages are not in {DEAD} "
           f"({short(k[len(run) + 1:] for k in lost)}): produce each one there, with its key, so someone can look "
           "at it later")
    altered = [key for key, value in bad.items() if dead[key].value() != value]
    expect(not altered, f"dead letters must keep the original bytes, to be inspected and replayed; these were "
           f"changed: {short(k[len(run) + 1:] for k in altered)}")
    innocent = [key for key in dead if key not in bad]
    expect(not innocent, f"good events went to the dead-letter topic ({short(innocent)}): only what cannot be read")
    passed(f"all {len(bad)} poison messages are in {DEAD}, byte for byte, "
           "and nothing else is")
    if not all(dead[key].headers() for key in bad):
        print("  tip: a header saying why (headers={'error': ...}) saves the on-call engineer a guess")
    print("All checks passed: compare with flashsale.adapters.kafka.decode_or_dead_letter, which returns its dead "
          "letters instead: the loop publishes them with the handler's output, and commits only once the broker "
          "has acknowledged each one (a flush returns 0 even when a delivery failed).")


def create_topics(bootstrap: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [NewTopic(t, partitions, 1) for t in (TOPIC, DEAD) if t not in admin.list_topics(timeout=10).topics]
    for future in (admin.create_topics(new).values() if new else []):
        future.result(10)


def consume(settings: Settings, group: str, decode, expected: set[str], producer, timeout: float) -> list[ev.Event]:
    """run_consumer's loop, with the learner's decode, until every expected event is handled or it is stuck."""
    settings = settings.model_copy(update={"instance": 0, "instances": 1})  # the group's only consumer
    source = kafka.member(settings, group, log_level=0)
    kafka.ownership(settings).take(source, [TOPIC])
    handled: list[ev.Event] = []
    failures, deadline = 0, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not expected <= {e.orderId for e in handled}:
            messages = [m for m in source.consume(500, timeout=0.2) if not m.error()]
            if not messages:
                continue
            try:
                events = decode(messages, producer)
                expect(isinstance(events, list), f"your function must return a list of events; it returned {events!r}")
                expect(producer.flush(10) == 0, "the dead letters were not acknowledged by the broker")
                handled += events
                source.commit(asynchronous=False)
            except (NotImplementedError, Wrong):
                raise
            except Exception as error:
                failures += 1
                if failures == 3:
                    raise Wrong(_stuck(messages, error)) from None
                kafka.rewind(source, messages)
        return handled
    finally:
        source.close()


def _stuck(messages, error: Exception) -> str:
    first = messages[0]
    return (f"the consumer is stuck: your function raised {type(error).__name__} ({str(error).splitlines()[0][:120]}) "
            f"on a batch from {first.topic()}[{first.partition()}]@{first.offset()}, three times. The loop retries a "
            "failed batch from its start, so it meets the same poison message forever and the partition stops. "
            "Catch the error for that message, produce it to the dead-letter topic, and go on with the next one.")


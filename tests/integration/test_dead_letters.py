"""Dead letters on the real broker: one the broker refuses loses nothing, a handler that always fails costs one
event and not the partition, and `flashsale dlq` shows the letters and sends them back once the bug is fixed.

Each test runs the services' own consumer loop in a process of its own (failing_consumer.py), on topics of
its own, with a handler whose bug the test puts in and takes out.
"""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from flashsale import events as ev
from flashsale.adapters import kafka
from flashsale.lab.replay import read_topic

LOOP = Path(__file__).with_name("failing_consumer.py")


def create_topics(settings, topics: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for future in admin.create_topics([NewTopic(t, settings.partitions, 1) for t in topics]).values():
        future.result(30)


def produce(settings, topic: str, values: list[bytes]) -> None:
    """All on partition 0, in order: offsets 0, 1, 2..."""
    producer = kafka.reliable_producer(settings.kafka_bootstrap_servers)
    for value in values:
        producer.produce(topic, value, key=b"k", partition=0)
    assert producer.flush(30) == 0


def order(order_id: str) -> bytes:
    return ev.Event(type=ev.ORDER_CREATED, orderId=order_id, userId="u", productId="P", quantity=1,
                    saleId=1).to_json()


def committed(settings, group: str, topic: str) -> int:
    """The group's committed offset on partition 0; negative when it never committed."""
    client = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group})
    try:
        return client.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        client.close()


def handled(folder: Path) -> list[str]:
    path = folder / "handled"
    return path.read_text().split() if path.exists() else []


@contextlib.contextmanager
def consumer_loop(stack, topic: str, folder: Path, group: str):
    env = {**stack.service_env(), "FLASHSALE_HANDLER_ATTEMPTS": "2"}
    with open(folder / "loop.log", "w") as log:
        process = subprocess.Popen([sys.executable, str(LOOP), topic, group, str(folder)], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def wait_for(condition, what: str, folder: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}; the loop's log:\n{(folder / 'loop.log').read_text()[-3000:]}"
        time.sleep(0.25)


def test_a_dead_letter_the_broker_refuses_leaves_its_message_uncommitted_and_delivered_again(stack, wired, tmp_path):
    run = uuid.uuid4().hex[:8]
    topic = f"dlq-refused-{run}-".ljust(246, "x")  # its dead-letter topic, 250 characters long, no broker takes
    group = f"dlq-refused-{run}"
    create_topics(wired, [topic])
    produce(wired, topic, [b"not an event", order(f"{run}-after")])  # the poison at offset 0, a good event at 1

    with consumer_loop(stack, topic, tmp_path, group):
        def retried() -> bool:
            offset = committed(wired, group, topic)
            assert offset <= 0, f"committed {offset}, past a message whose dead letter was refused: it is lost"
            return handled(tmp_path).count(f"{run}-after") >= 3  # its batch came back, again and again

        wait_for(retried, "the batch of a refused dead letter was not tried again", tmp_path)
        assert committed(wired, group, topic) <= 0
    assert "Invalid topic" in (tmp_path / "loop.log").read_text()


def test_an_event_whose_handler_always_fails_is_dead_lettered_with_its_error_and_the_partition_moves_on(
        stack, wired, tmp_path):
    run = uuid.uuid4().hex[:8]
    topic, group = f"dlq-failing-{run}", f"dlq-failing-{run}"
    create_topics(wired, [topic, ev.dead_letter_topic(topic)])
    (tmp_path / "broken").write_text(f"{run}-bug")
    values = [order(f"{run}-before"), order(f"{run}-bug"), order(f"{run}-after")]
    produce(wired, topic, values)

    with consumer_loop(stack, topic, tmp_path, group):
        wait_for(lambda: committed(wired, group, topic) == 3, "the partition did not move past the failing event",
                 tmp_path)
    assert {f"{run}-before", f"{run}-after"} <= set(handled(tmp_path)) and f"{run}-bug" not in handled(tmp_path)
    [letter] = read_topic(wired, ev.dead_letter_topic(topic))
    headers = {name: value.decode() for name, value in letter.headers()}
    assert letter.value() == values[1] and letter.key() == b"k"
    assert headers["error"] == f"RuntimeError: a bug meets order {run}-bug", headers
    assert (headers["topic"], headers["partition"], headers["offset"]) == (topic, "0", "1")


def flashsale(stack, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLASHSALE_HOME": str(stack.home)}
    done = subprocess.run([sys.executable, "-m", "flashsale.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_flashsale_dlq_lists_a_dead_letter_and_replay_sends_it_back_once_after_the_fix(stack, wired, tmp_path):
    run = uuid.uuid4().hex[:8]
    topic, group = f"dlq-replay-{run}", f"dlq-replay-{run}"
    create_topics(wired, [topic, ev.dead_letter_topic(topic)])
    (tmp_path / "broken").write_text(f"{run}-bug")
    produce(wired, topic, [order(f"{run}-bug"), order(f"{run}-after")])

    with consumer_loop(stack, topic, tmp_path, group):
        wait_for(lambda: committed(wired, group, topic) == 2, "the failing event was not dead-lettered", tmp_path)
        [listed] = json.loads(flashsale(stack, "dlq", "--json", "--topic", topic).stdout)
        assert (listed["topic"], listed["partition"], listed["offset"]) == (topic, 0, 0)
        assert listed["replayed"] is False and f"a bug meets order {run}-bug" in listed["error"]
        assert "1 not sent back" in flashsale(stack, "dlq", "--topic", topic).stdout

        (tmp_path / "broken").unlink()  # the fix
        [sent] = json.loads(flashsale(stack, "dlq", "--replay", "--json", "--topic", topic).stdout)
        assert sent["at"]["topic"] == ev.dead_letter_topic(topic)
        wait_for(lambda: f"{run}-bug" in handled(tmp_path), "the replayed event was not handled", tmp_path)

        assert json.loads(flashsale(stack, "dlq", "--replay", "--json", "--topic", topic).stdout) == []
        [listed] = json.loads(flashsale(stack, "dlq", "--json", "--topic", topic).stdout)
        assert listed["replayed"] is True

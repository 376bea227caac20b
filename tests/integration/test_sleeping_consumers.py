"""A quiet consumer sleeps on tansu (adapters/kafka/doze.py), and misses nothing: the services' own loop, in a process
of its own on a topic of its own (failing_consumer.py), with the real broker and the stack's Redis for its bell.

How quickly a sleeping stack answers its first order is the bench's figure (`first_order_after_idle_ms`), not a test's.
"""
import signal
import time
import uuid

import pytest
from test_dead_letters import consumer_loop, create_topics, handled, order, produce, wait_for

from flashsale.adapters.kafka import doze
from flashsale.brokers import choose
from flashsale.settings import Settings

pytestmark = pytest.mark.skipif(not choose(Settings()).dozes,
                                reason="Apache Kafka's consumers wait in a long poll; only tansu's sleep")

ASLEEP_S = doze.QUIET_S + 2  # a loop that heard nothing this long has paused its partitions


def test_a_sleeping_loop_reads_an_event_nobody_rang_for_at_its_next_look(stack, wired, tmp_path):
    run = uuid.uuid4().hex[:8]
    topic = group = f"doze-look-{run}"
    create_topics(wired, [topic])
    with consumer_loop(stack, topic, tmp_path, group):
        produce(wired, topic, [order(f"{run}-awake")])
        wait_for(lambda: f"{run}-awake" in handled(tmp_path), "the first event was not handled", tmp_path)
        time.sleep(ASLEEP_S)
        produce(wired, topic, [order(f"{run}-asleep")])  # a plain producer, as a notebook's own: it rings no bell
        wait_for(lambda: f"{run}-asleep" in handled(tmp_path), "an event written while the loop slept was never read",
                 tmp_path, timeout=doze.LOOK_S + 20)


def test_a_ring_wakes_a_sleeping_loop_which_then_reads_every_event_written_within_the_ring_interval(
        stack, wired, tmp_path):
    run = uuid.uuid4().hex[:8]
    topic = group = f"doze-ring-{run}"
    create_topics(wired, [topic])
    bell = doze.Bell.at(wired.redis_url)
    with consumer_loop(stack, topic, tmp_path, group):
        time.sleep(ASLEEP_S)
        produce(wired, topic, [order(f"{run}-0")])
        bell.ring()
        for n in range(1, 4):  # rung once: the producer stays quiet for a ring interval, as the bell allows
            time.sleep(doze.RING_S / 4)
            produce(wired, topic, [order(f"{run}-{n}")])
        wait_for(lambda: {f"{run}-{n}" for n in range(4)} <= set(handled(tmp_path)),
                 "events written after a ring were not all read", tmp_path, timeout=doze.LOOK_S + 20)


def test_sigterm_stops_a_sleeping_loop_cleanly_without_waiting_out_its_sleep(stack, wired, tmp_path):
    run = uuid.uuid4().hex[:8]
    topic = group = f"doze-stop-{run}"
    create_topics(wired, [topic])
    with consumer_loop(stack, topic, tmp_path, group) as process:
        time.sleep(ASLEEP_S)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        stopped_in = time.monotonic() - started
    assert process.returncode == 0 and "stopped cleanly" in (tmp_path / "loop.log").read_text()
    assert stopped_in < doze.LOOK_S, f"stopped {stopped_in:.1f} s after SIGTERM"

"""The gap guard admits each partition's offsets without holes, seeks back where the broker skipped some, drops
what it had handled, and lets a gap through, loudly, once the grace is over."""
import logging

from confluent_kafka import TopicPartition

from flashsale.adapters.gaps import GapGuard


class Message:
    def __init__(self, partition: int, offset: int, topic: str = "order.events"):
        self._topic, self._partition, self._offset = topic, partition, offset

    def topic(self):
        return self._topic

    def partition(self):
        return self._partition

    def offset(self):
        return self._offset


class Source:
    """Records where the guard seeks."""

    def __init__(self):
        self.sought: list[tuple[str, int, int]] = []

    def seek(self, tp: TopicPartition) -> None:
        self.sought.append((tp.topic, tp.partition, tp.offset))


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def offsets(messages) -> list[tuple[int, int]]:
    return [(m.partition(), m.offset()) for m in messages]


def test_messages_without_holes_pass_untouched_and_the_first_sets_where_a_partition_starts():
    guard, source = GapGuard(), Source()
    batch = [Message(0, 7), Message(1, 3), Message(0, 8), Message(1, 4)]
    assert guard.admit(source, batch) == batch
    assert offsets(guard.admit(source, [Message(0, 9), Message(1, 5)])) == [(0, 9), (1, 5)]
    assert source.sought == []


def test_a_jump_seeks_back_to_the_first_missing_offset_and_holds_that_partition_while_others_go_on(caplog):
    guard, source = GapGuard(), Source()
    guard.expect([TopicPartition("order.events", 0, 100), TopicPartition("order.events", 1, 50)])
    with caplog.at_level(logging.WARNING):
        admitted = guard.admit(source, [Message(0, 100), Message(0, 145), Message(1, 50), Message(0, 146)])
    assert offsets(admitted) == [(0, 100), (1, 50)]
    assert source.sought == [("order.events", 0, 101)]
    assert "skipped offsets 101-144" in caplog.text


def test_the_skipped_batch_read_again_is_admitted_and_what_was_handled_is_dropped(caplog):
    guard, source = GapGuard(), Source()
    guard.expect([TopicPartition("order.events", 0, 10)])
    guard.admit(source, [Message(0, 10), Message(0, 20)])  # 11-19 skipped
    guard.admit(source, [Message(0, 20)])  # not stored yet: sought back again
    with caplog.at_level(logging.INFO):
        admitted = guard.admit(source, [Message(0, m) for m in range(9, 22)])
    assert offsets(admitted) == [(0, m) for m in range(11, 22)]
    assert source.sought == [("order.events", 0, 11)] * 2
    assert guard.reread == 1 and "offset 11 read again" in caplog.text


def test_a_gap_still_open_after_the_grace_is_let_through_and_logged_as_an_error(caplog):
    clock = Clock()
    guard, source = GapGuard(grace_s=10, clock=clock), Source()
    guard.expect([TopicPartition("order.events", 0, 5)])
    guard.admit(source, [Message(0, 9)])
    clock.now = 9.9
    assert guard.admit(source, [Message(0, 9)]) == []
    clock.now = 10.1
    with caplog.at_level(logging.ERROR):
        assert offsets(guard.admit(source, [Message(0, 9), Message(0, 10)])) == [(0, 9), (0, 10)]
    assert "offsets 5-8 never came back in 10 s" in caplog.text
    assert guard.reread == 0 and len(source.sought) == 2


def test_a_rewound_partition_is_read_again_from_where_the_guard_is_told():
    guard, source = GapGuard(), Source()
    guard.admit(source, [Message(0, 3), Message(0, 4)])
    guard.expect([TopicPartition("order.events", 0, 3)])  # the loop rewound a failed batch
    assert offsets(guard.admit(source, [Message(0, 3), Message(0, 4)])) == [(0, 3), (0, 4)]
    assert source.sought == []

"""What a consumer does with an error in place of a message or a commit: news to nobody, logged, or the end of its
loop (a fatal one: runner.serve builds a new consumer, tests/unit/test_consumer_loop.py)."""
import logging

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from flashsale.adapters import kafka


class Polled:
    """What `consume()` hands back: a message, or an error in its place (pure logic: no broker needed)."""

    def __init__(self, error: KafkaError | None):
        self._error = error

    def error(self) -> KafkaError | None:
        return self._error


def test_a_message_is_not_a_failure():
    assert kafka.failed(Polled(None)) is False


def test_the_end_of_a_partition_is_skipped_without_a_word(caplog):
    with caplog.at_level(logging.ERROR):
        assert kafka.failed(Polled(KafkaError(KafkaError._PARTITION_EOF))) is True
    assert caplog.records == []


def test_any_other_error_is_logged_and_skipped(caplog):
    with caplog.at_level(logging.ERROR):
        assert kafka.failed(Polled(KafkaError(KafkaError._TRANSPORT, "broker down"))) is True
    assert "consumer error" in caplog.text and "broker down" in caplog.text


def test_a_fence_that_comes_as_code_fatal_without_the_fatal_flag_ends_the_loop_too():
    # what inventory's consumer handed back after Apache Kafka's kill -9 and restart, at a load of 4-5
    fenced = KafkaError(KafkaError._FATAL, "Fatal error: Broker: Static consumer fenced by other consumer")
    assert not fenced.fatal()
    with pytest.raises(kafka.FatalConsumerError, match="Static consumer fenced"):
        kafka.failed(Polled(fenced))


def test_a_fatal_error_ends_the_loop_saying_why():
    fenced = KafkaError(KafkaError.FENCED_INSTANCE_ID, "fenced by another member", fatal=True)
    with pytest.raises(kafka.FatalConsumerError, match="fatal consumer error: .*fenced by another member"):
        kafka.failed(Polled(fenced))


class Refused(kafka.KafkaSource):
    """A source whose broker refuses its commit with `error` (no broker is reached: nothing else is called)."""

    def __init__(self, error: KafkaError):
        super().__init__({"bootstrap.servers": "127.0.0.1:9", "group.id": "inventory"})
        self.error = error

    def commit(self, *args, **kwargs) -> list[TopicPartition]:
        raise KafkaException(self.error)


class Handled:
    def topic(self): return "order.events"
    def partition(self): return 0
    def offset(self): return 7


def test_a_commit_refused_fatally_ends_the_loop_with_a_fatal_consumer_error():
    source = Refused(KafkaError(KafkaError.FENCED_INSTANCE_ID, "fenced by another member", fatal=True))
    with pytest.raises(kafka.FatalConsumerError, match="on commit: .*fenced by another member"):
        source.commit_after([Handled()])
    source.close()


def test_a_commit_refused_for_a_while_is_raised_as_it_is_for_the_batch_to_be_retried():
    source = Refused(KafkaError(KafkaError.REQUEST_TIMED_OUT, "coordinator busy"))
    with pytest.raises(KafkaException) as refused:
        source.commit_after([Handled()])
    assert not isinstance(refused.value, kafka.FatalConsumerError)
    source.close()

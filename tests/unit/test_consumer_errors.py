"""What a consumer does with an error in place of a message: news to nobody, logged, or the end of the process."""
import logging

import pytest
from confluent_kafka import KafkaError

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


def test_a_fatal_error_stops_the_process_saying_why():
    fenced = KafkaError(KafkaError.FENCED_INSTANCE_ID, "fenced by another member", fatal=True)
    with pytest.raises(SystemExit, match="fatal consumer error, stopping: .*fenced by another member"):
        kafka.failed(Polled(fenced))

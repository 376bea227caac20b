"""A gateway whose background work has died says so: /healthz answers 503 naming it, and `status` sees it.

The gateway's own app, served by uvicorn on a port of its own and wired to the session's real servers.
What fails is provoked from outside the app: the fan-out's Kafka consumer fails as one with a fatal error
does, and the producer's librdkafka error callback is handed a fatal error.
"""
import threading
import time
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from confluent_kafka import KafkaError, KafkaException

from flashsale.adapters import kafka
from flashsale.services import gateway
from flashsale.stack.components import SERVICES
from flashsale.stack.processes import free_port


@contextmanager
def serving(app):
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), loop="asyncio",
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(15)


class FailingConsumer:
    """The fan-out's real consumer, until `fail` is set: then it fails as a consumer with a fatal error does."""

    def __init__(self, real):
        self.real, self.fail = real, threading.Event()

    def assign(self, partitions):
        self.real.assign(partitions)

    def consume(self, *args, **kwargs):
        if self.fail.is_set():
            raise KafkaException(KafkaError(KafkaError._FATAL, "the group coordinator fenced us", fatal=True))
        return self.real.consume(*args, **kwargs)

    def close(self):
        self.real.close()


@pytest.fixture
def wired_gateway(wired, monkeypatch):
    """The gateway's app on the session's servers; its fan-out consumer and producer settings within reach."""
    consumers, producers = [], []
    real_consumer, real_producer = kafka.consumer, kafka.reliable_producer

    def consumer(*args, **kwargs):
        consumers.append(FailingConsumer(real_consumer(*args, **kwargs)))
        return consumers[-1]

    def producer(*args, **overrides):
        producers.append(overrides)
        return real_producer(*args, **overrides)

    monkeypatch.setattr(kafka, "consumer", consumer)
    monkeypatch.setattr(kafka, "reliable_producer", producer)
    with serving(gateway.create_app(wired)) as url:
        yield url, consumers, producers


def health(url: str, status: int, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while (answer := httpx.get(f"{url}/healthz", timeout=10)).status_code != status:
        assert time.monotonic() < deadline, f"/healthz stayed {answer.status_code}: {answer.text}"
        time.sleep(0.2)
    return answer.json()


def test_a_dead_fan_out_makes_healthz_answer_503_naming_it(wired_gateway):
    url, [fanout_consumer], _ = wired_gateway
    assert health(url, 200)["healthy"] is True
    fanout_consumer.fail.set()
    body = health(url, 503)
    assert body["error"]["code"] == "UNHEALTHY"
    assert "fan-out of notification.events: died: KafkaException" in body["error"]["message"], body
    assert body["redis"] and body["postgres"] and body["kafka"]  # the servers answer: the task is the trouble
    assert SERVICES["gateway"].answers(url) is False  # what `flashsale status` asks: the gateway is unhealthy


def test_a_fatal_producer_error_makes_healthz_answer_503(wired_gateway):
    url, _, [overrides] = wired_gateway
    assert health(url, 200)["healthy"] is True
    # librdkafka calls error_cb with this when the producer is unusable for good (UNKNOWN_PRODUCER_ID, fenced...)
    overrides["error_cb"](KafkaError(KafkaError._FATAL, "UNKNOWN_PRODUCER_ID: the broker forgot us", fatal=True))
    message = health(url, 503)["error"]["message"]
    assert message.startswith("kafka producer: fatal Kafka error _FATAL") and "UNKNOWN_PRODUCER_ID" in message

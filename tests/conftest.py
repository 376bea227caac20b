"""One real embedded stack per test session: tansu, PostgreSQL and Redis, and every service."""
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from flashsale.settings import Settings
from flashsale.stack.control import Stack
from flashsale.stack.processes import free_port


@pytest.fixture(scope="session")
def stack() -> Stack:
    # Not under pytest's basetemp: the notebook tests run pytest (nbval) again, and each of those runs
    # makes a basetemp of its own and may rotate old ones away, data directory and all.
    home = Path(tempfile.mkdtemp(prefix="flashsale-tests-"))
    settings = Settings(home=home, gateway_port=free_port(), shop_port=free_port(), psp_port=free_port(),
                        payment_delay_ms=50)
    stack = Stack(settings)
    stack.up()
    yield stack
    stack.down()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def wired(stack) -> Settings:
    """The settings the services run with: real addresses of the real servers."""
    return stack.wired()


@pytest.fixture
def new_topic(wired):
    """Makes a topic of one partition, named for the test's purpose, that no service reads."""
    admin = AdminClient({"bootstrap.servers": wired.kafka_bootstrap_servers})  # held until its futures resolve

    def make(purpose: str) -> str:
        topic = f"{purpose}-{uuid.uuid4().hex[:8]}"
        for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
            future.result(10)
        return topic
    return make


@pytest.fixture
def fresh_sale(stack):
    """A new sale of 100 units, one per buyer, for each test that races."""
    return stack.reset(stock=100, per_user_limit=1)


UNIT = Path(__file__).parent / "unit"
FAULTS = Path(__file__).parent / "faults"


def pytest_configure(config):
    config.addinivalue_line("markers", "faults: breaks and mends the shared stack; runs after every other test")
    config.addinivalue_line("markers", "broker_free: its outcome does not depend on the broker (every unit test is): "
                                       "CI's Kafka pass leaves it out, `-m 'not broker_free'`, the tansu pass ran it")


def pytest_collection_modifyitems(items):
    """Fault tests kill servers of the session's stack: run them last, so nothing else meets the wreckage."""
    for item in items:
        if UNIT in item.path.parents:
            item.add_marker(pytest.mark.broker_free)
        if FAULTS in item.path.parents:
            item.add_marker(pytest.mark.faults)
    items.sort(key=lambda item: item.get_closest_marker("faults") is not None)  # stable: the rest keep their order

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
# Where a broker_free test is also `beside`: CI runs it in a pytest of its own beside the tansu pass (.ci/run). They
# mostly wait on installs, kernels, browsers and timeouts: the broker_free tests of integration/ and these notebook
# and fault files took 529 s alone here, with the machine's two cores 32% busy on average (2026-12-07). Not the unit
# tests (quick, and busy), nor test_notebooks.py and test_exercises.py, whose nbval sessions their broker tests share.
BESIDE = [Path(__file__).parent / path for path in (
    "rooms", "integration", "faults/test_fast_broker.py", "notebooks/test_tidy.py",
    "notebooks/test_what_the_lessons_say.py", "notebooks/test_lab_in_browser.py")]


def pytest_configure(config):
    config.addinivalue_line("markers", "faults: breaks and mends the shared stack; runs after every other test")
    config.addinivalue_line("markers", "broker_free: its outcome does not depend on the broker (every unit test is): "
                                       "CI's Kafka pass leaves it out, `-m 'not broker_free'`, the tansu pass ran it")
    config.addinivalue_line("markers", "beside: broker_free and mostly waiting (BESIDE says where): CI runs these in "
                                       "a pytest of their own, `-m beside`, beside the tansu pass, `-m 'not beside'`")


def pytest_collection_modifyitems(items):
    """Fault tests kill servers of the session's stack: run them last, so nothing else meets the wreckage."""
    for item in items:
        if UNIT in item.path.parents:
            item.add_marker(pytest.mark.broker_free)
        if item.get_closest_marker("broker_free") and any(p == item.path or p in item.path.parents for p in BESIDE):
            item.add_marker(pytest.mark.beside)
        if FAULTS in item.path.parents:
            item.add_marker(pytest.mark.faults)
    items.sort(key=lambda item: item.get_closest_marker("faults") is not None)  # stable: the rest keep their order

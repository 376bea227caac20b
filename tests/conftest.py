"""One real embedded stack per test session: tansu, PostgreSQL and Redis, and every service."""
import pytest

from flashsale.settings import Settings
from flashsale.stack.control import Stack
from flashsale.stack.processes import free_port


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    settings = Settings(home=tmp_path_factory.mktemp("flashsale-home"), gateway_port=free_port(),
                        shop_port=free_port(), payment_delay_ms=50)
    stack = Stack(settings)
    stack.up()
    yield stack
    stack.down()


@pytest.fixture
def wired(stack) -> Settings:
    """The settings the services run with: real addresses of the real servers."""
    return stack.wired()


@pytest.fixture
def fresh_sale(stack):
    """A new sale of 100 units, one per buyer, for each test that races."""
    return stack.reset(stock=100, per_user_limit=1)

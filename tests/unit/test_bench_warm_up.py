"""bench: what warms up before the fan-out's clock starts depends on the broker."""
import pytest

from flashsale.bench import fanout_warm_up
from flashsale.settings import Settings


@pytest.mark.parametrize("broker, kafka_nodes, seconds", [("tansu", 1, 1.0), ("kafka", 1, 60), ("kafka", 3, 60)])
def test_the_fan_out_warms_up_with_its_own_load_only_on_a_broker_that_compiles(broker, kafka_nodes, seconds):
    assert fanout_warm_up(Settings(broker=broker, kafka_nodes=kafka_nodes), 30) == seconds


def test_the_fan_out_keeps_its_first_second_out_of_the_clock_even_without_a_warm_up():
    assert fanout_warm_up(Settings(broker="kafka"), 0) == fanout_warm_up(Settings(broker="tansu"), 0) == 1.0

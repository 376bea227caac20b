"""A server keeps its ports across restarts unless another server stands in its place in the same home."""
from flashsale.stack.launcher import reusable


def test_the_same_server_started_again_keeps_its_ports():
    assert reusable({"port": 9092}, {"port": 40001}) == {"port": 9092}


def test_apache_kafka_after_tansu_in_the_same_home_gets_ports_of_its_own():
    fresh = {"broker": 40001, "controller": 40002}
    assert reusable({"port": 9092}, fresh) == fresh


def test_tansu_after_apache_kafka_and_a_first_start_get_the_fresh_ports():
    assert reusable({"broker": 9092, "controller": 9093}, {"port": 40001}) == {"port": 40001}
    assert reusable(None, {"port": 40001}) == {"port": 40001}

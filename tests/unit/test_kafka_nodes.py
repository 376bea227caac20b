"""Kafka nodes: the id a new cluster is formatted with, and what three nodes change for the group members."""
from flashsale.adapters import kafka
from flashsale.settings import Settings
from flashsale.stack import apache_kafka


def test_a_cluster_id_that_would_start_with_a_dash_is_drawn_again():
    draws = iter([bytes([0xF8]) + bytes(15), bytes([0x04]) + bytes(15)])  # base64 "-AAA…", then "BAAA…"
    assert apache_kafka.cluster_id(lambda size: next(draws)) == "BAAAAAAAAAAAAAAAAAAAAA"


def test_cluster_ids_are_22_url_safe_characters_and_never_start_with_a_dash():
    ids = {apache_kafka.cluster_id() for _ in range(5000)}  # 1 plain uuid4 in 64 starts with "-": ~78 of these
    assert len(ids) == 5000
    assert all(len(made) == 22 and not made.startswith("-") for made in ids)


def test_on_three_nodes_a_member_keeps_its_session_longer_than_a_coordinators_failover():
    one = Settings(broker="kafka")
    three = Settings(broker="kafka", kafka_nodes=3)
    assert kafka.member_config(one, "orders")["session.timeout.ms"] == 6000  # a killed service is noticed soon
    assert kafka.member_config(three, "orders")["session.timeout.ms"] == kafka.CLUSTER_SESSION_MS == 15000
    # KIP-848 members get theirs from the brokers
    assert "session.timeout.ms" not in kafka.member_config(three.model_copy(update={"group_protocol": "consumer"}),
                                                            "orders")
    assert apache_kafka.THREE_NODES["group.consumer.session.timeout.ms"] == kafka.CLUSTER_SESSION_MS

"""The id a new Kafka cluster is formatted with: StorageTool reads an id that starts with "-" as an option."""
from flashsale.stack import apache_kafka


def test_a_cluster_id_that_would_start_with_a_dash_is_drawn_again():
    draws = iter([bytes([0xF8]) + bytes(15), bytes([0x04]) + bytes(15)])  # base64 "-AAA…", then "BAAA…"
    assert apache_kafka.cluster_id(lambda size: next(draws)) == "BAAAAAAAAAAAAAAAAAAAAA"


def test_cluster_ids_are_22_url_safe_characters_and_never_start_with_a_dash():
    ids = {apache_kafka.cluster_id() for _ in range(5000)}  # 1 plain uuid4 in 64 starts with "-": ~78 of these
    assert len(ids) == 5000
    assert all(len(made) == 22 and not made.startswith("-") for made in ids)

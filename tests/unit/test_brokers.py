"""One broker profile per broker, chosen from the settings in one place: what each profile says follows from it."""
import pytest

from flashsale.brokers import PROFILES, choose
from flashsale.settings import Settings


@pytest.mark.parametrize(("changes", "profile"), [
    ({}, "tansu-s3"), ({"broker": "tansu"}, "tansu-s3"), ({"durable": False}, "tansu"), ({"broker": "kafka"}, "kafka"),
    ({"broker": "kafka", "durable": True}, "kafka"), ({"broker": "kafka", "kafka_nodes": 3}, "kafka-3-nodes"),
    ({"infra": "docker"}, "external"), ({"infra": "external", "broker": "kafka"}, "external")])
def test_the_settings_name_one_profile(changes, profile):
    assert choose(Settings(**changes)).name == profile


def test_the_default_and_every_broker_but_fast_tansu_keep_what_they_acknowledged_and_say_so():
    assert choose(Settings()).durable and [name for name, p in PROFILES.items() if not p.durable] == ["tansu"]
    assert "GIVES UP DURABILITY" in PROFILES["tansu"].promise and "--fast" in PROFILES["tansu"].promise
    assert all("loses no accepted order" in p.promise for p in PROFILES.values() if p.durable)


def test_only_the_memory_broker_forgets_and_only_an_apache_kafka_compiles_and_shares_partitions_out():
    assert [name for name, p in PROFILES.items() if p.forgets_on_restart] == ["tansu"]
    assert {name for name, p in PROFILES.items() if p.compiles} == {name for name, p in PROFILES.items() if p.groups}
    assert not any(PROFILES[name].groups for name in ("tansu", "tansu-s3"))


def test_the_durable_tansu_is_the_one_broker_whose_producers_are_not_idempotent():
    """tansu 0.6 on S3 answers a retried batch "duplicate" after a crash, and it is lost (brokers.ONE_IN_FLIGHT)."""
    assert [name for name, p in PROFILES.items() if not p.producer.get("enable.idempotence")] == ["tansu-s3"]
    assert PROFILES["tansu-s3"].producer["max.in.flight.requests.per.connection"] == 1


def test_a_one_off_reader_never_long_polls_even_where_the_services_do():
    assert all(p.reading["fetch.wait.max.ms"] <= 100 for p in PROFILES.values())
    assert PROFILES["kafka"].waiting["fetch.wait.max.ms"] == 500


def test_every_broker_the_stack_starts_has_an_engine_and_the_others_none():
    from flashsale.stack.components import ENGINES, servers

    for profile in PROFILES.values():
        if profile.engine is None:
            with pytest.raises(ValueError):
                servers(profile)
        else:
            assert profile.engine in ENGINES and "kafka" in servers(profile)

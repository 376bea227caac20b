"""Settings hold the safety rules, whoever builds them: public mode is protected on its own."""
import pytest
from pydantic import ValidationError

from flashsale.brokers import choose
from flashsale.settings import PUBLIC_BURST, PUBLIC_RATE_LIMIT_PER_S, Settings


@pytest.fixture(autouse=True)
def no_flashsale_environment(monkeypatch, tmp_path):
    """Only what a test passes counts: no FLASHSALE_* variable of the machine, no .env file."""
    import os

    for name in [n for n in os.environ if n.startswith("FLASHSALE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_public_mode_refuses_the_default_admin_token_and_names_the_variable():
    with pytest.raises(ValidationError) as refused:
        Settings(public=True)
    assert "FLASHSALE_ADMIN_TOKEN" in str(refused.value)


def test_public_mode_refuses_it_from_the_environment_too(monkeypatch):
    monkeypatch.setenv("FLASHSALE_PUBLIC", "1")
    with pytest.raises(ValidationError, match="FLASHSALE_ADMIN_TOKEN"):
        Settings()


def test_public_mode_turns_the_rate_limit_on():
    settings = Settings(public=True, admin_token="a-secret-of-our-own")
    assert (settings.rate_limit_per_s, settings.rate_limit_burst) == (PUBLIC_RATE_LIMIT_PER_S, PUBLIC_BURST)
    assert Settings().rate_limit_per_s == 0  # a classroom on loopback shares one address: off


def test_public_mode_keeps_a_rate_limit_chosen_by_hand():
    settings = Settings(public=True, admin_token="a-secret-of-our-own", rate_limit_per_s=50, rate_limit_burst=80)
    assert (settings.rate_limit_per_s, settings.rate_limit_burst) == (50, 80)


def test_addresses_are_taken_by_field_name_as_well_as_by_variable():
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1", database_url="postgresql://x@127.0.0.1:2/x")
    copy = Settings.model_validate(settings.model_dump())
    assert (copy.kafka_bootstrap_servers, copy.database_url) == ("127.0.0.1:1", "postgresql://x@127.0.0.1:2/x")


@pytest.mark.parametrize(("changes", "wait_ms"), [
    ({"broker": "tansu", "durable": False}, 5), ({"broker": "tansu"}, 100), ({"durable": True}, 100),
    ({"broker": "kafka"}, 500), ({"broker": "kafka", "durable": True}, 500), ({"infra": "docker"}, 500),
    ({"infra": "external"}, 500)])
def test_consumers_wait_for_events_as_their_broker_needs(changes, wait_ms):
    """tansu answers an empty fetch only when its wait is over, so its wait is short; every Apache Kafka long-polls."""
    waits = choose(Settings(**changes)).waiting
    assert waits["fetch.wait.max.ms"] == wait_ms
    assert ("queued.min.messages" in waits) == (wait_ms < 500)  # the backoff would hold a partition out of a long poll


def test_the_payment_deadline_is_30_s_unless_the_environment_says_otherwise(monkeypatch):
    assert Settings().payment_deadline_s == 30
    monkeypatch.setenv("FLASHSALE_PAYMENT_DEADLINE_S", "3")
    assert Settings().payment_deadline_s == 3
    monkeypatch.setenv("FLASHSALE_PAYMENT_DEADLINE_S", "0")
    with pytest.raises(ValueError, match="payment_deadline_s"):
        Settings()

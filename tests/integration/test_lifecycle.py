"""Services stop cleanly on SIGTERM; external mode uses the addresses it is given."""
import signal

from flashsale.settings import Settings
from flashsale.stack.control import Stack
from flashsale.stack.processes import free_port, wait_until


def test_a_consumer_stops_cleanly_on_sigterm_and_comes_back(stack):
    log = stack.log_path("inventory")
    before = log.read_text().count("stopped cleanly")
    [pid] = stack.kill("inventory", signal.SIGTERM)
    wait_until(lambda: log.read_text().count("stopped cleanly") == before + 1, 15,
               "inventory did not stop cleanly", log)
    stack.up()
    assert stack.status()["services"]["inventory"]["healthy"]
    assert stack.status()["services"]["inventory"]["pid"] != pid


def test_external_mode_uses_the_given_addresses(stack, tmp_path, monkeypatch):
    wired = stack.wired()
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", wired.kafka_bootstrap_servers)
    monkeypatch.setenv("DATABASE_URL", wired.database_url)
    monkeypatch.setenv("REDIS_URL", wired.redis_url)
    external = Stack(Settings(home=tmp_path, infra="external", gateway_port=free_port(), shop_port=free_port(),
                              psp_port=free_port()))
    assert external.wired().database_url == wired.database_url
    status = external.status()
    assert all(component["healthy"] for component in status["infra"].values()), status["infra"]
    assert all(component["pid"] is None for component in status["infra"].values())  # not ours to stop
    assert status["sale"]["productId"] == "FLASH_SALE_PRODUCT_001"

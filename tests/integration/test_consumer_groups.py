"""Consumer groups on Apache Kafka: scale a service, kill a member, and read what the broker says.

On Apache Kafka each service instance is a static member of its group (classic protocol or KIP-848, as
Settings.group_protocol says), so the broker itself says who owns which partition. tansu has no working group
coordinator: there each instance owns its partitions by number (tested with the rest of the suite), and these
tests skip.
"""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from flashsale.adapters import kafka, postgres
from flashsale.events import ORDER_EVENTS
from flashsale.harness.checks import invariants, settle
from flashsale.harness.load import run_buyers
from flashsale.stack.control import Stack
from flashsale.stack.processes import stop

SESSION_TIMEOUT_S = 6  # the members' session timeout, either protocol (adapters/kafka/consume.py, apache_kafka.py)


@pytest.fixture
def groups(stack) -> Stack:
    """The session's stack, on a broker with consumer groups; inventory back to one member afterwards."""
    if not stack.settings.consumer_groups:
        pytest.skip("tansu has no consumer groups: each instance owns partitions p % n == i, tested elsewhere")
    yield stack
    stack.scale("inventory", 1)
    assert wait_for(lambda: owners(stack) == {"inventory-0": [0, 1, 2]}, timeout=30), owners(stack)


def owners(stack: Stack, group: str = "inventory") -> dict[str, list[int]]:
    """{member's instance id: the partitions of order.events it owns}, as the broker says."""
    view = kafka.describe_groups(stack.wired().kafka_bootstrap_servers, [group])[group]
    return {m.instance: [p for topic, p in m.partitions if topic == ORDER_EVENTS] for m in view.members}


def wait_for(check, timeout: float, every: float = 0.2) -> bool:
    """Poll `check` until it holds; a broker that cannot describe the group yet counts as "not yet"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except kafka.KafkaException:
            pass
        time.sleep(every)
    return False


def one_owner_each(members: dict[str, list[int]], partitions: int = 3) -> bool:
    owned = [p for ps in members.values() for p in ps]
    return sorted(owned) == list(range(partitions))


def flashsale(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    """The `flashsale` command against the session's stack, as tests/integration/test_cli.py runs it."""
    env = {**os.environ, "FLASHSALE_HOME": str(stack.home), "FLASHSALE_GATEWAY_PORT": str(stack.settings.gateway_port),
           "FLASHSALE_SHOP_PORT": str(stack.settings.shop_port),
           "FLASHSALE_PSP_PORT": str(stack.settings.psp_port)}
    return subprocess.run([sys.executable, "-m", "flashsale.cli", *args], env=env, capture_output=True, text=True,
                          timeout=180)


def pids(stack: Stack) -> dict[str, int]:
    return {name: info.pid for name, info in stack.processes("inventory").items()}


def recorded(settings, sale_id: int, status: str | None = None) -> int:
    """Orders of the sale the orders service has recorded (with `status`, if given)."""
    with postgres.connect(settings.database_url) as pg:
        query = "SELECT count(*) FROM orders WHERE sale_id = %s" + (" AND status = %s" if status else "")
        return pg.execute(query, (sale_id, status) if status else (sale_id,)).fetchone()[0]


def test_scaling_inventory_to_three_gives_a_group_of_three_members_the_broker_lists(groups):
    first = pids(groups)["inventory"]
    groups.scale("inventory", 3)

    expected = {"inventory-0", "inventory-1", "inventory-2"}
    assert wait_for(lambda: set(owners(groups)) == expected and all(len(ps) == 1 for ps in owners(groups).values()),
                    timeout=15), owners(groups)
    assert one_owner_each(owners(groups))
    assert pids(groups)["inventory"] == first, "scaling up restarted the member that was running"

    # The command does the same; asked for the size the group already has, it restarts nothing.
    before = pids(groups)
    done = flashsale(groups, "scale", "inventory", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "inventory: 3 running" in done.stdout, done.stdout
    assert pids(groups) == before


def test_a_fourth_member_sits_idle(groups):
    groups.scale("inventory", 4)

    def settled():
        members = owners(groups)
        return len(members) == 4 and one_owner_each(members) and sorted(map(len, members.values())) == [0, 1, 1, 1]

    assert wait_for(settled, timeout=15), owners(groups)


@pytest.mark.faults  # it kills a consumer of the shared stack, as test_faults.py does: it runs last
def test_kill_9_of_one_member_mid_sale_loses_nothing_and_oversells_nothing(groups, wired, fresh_sale):
    groups.scale("inventory", 3)
    assert wait_for(lambda: len(owners(groups)) == 3 and one_owner_each(owners(groups)), timeout=15), owners(groups)
    victim = "inventory-1"
    victims_partitions = owners(groups)[victim]

    races = []
    buyers = threading.Thread(target=lambda: races.append(
        run_buyers("gateway", wired.gateway_url, buyers=1000, product_id=fresh_sale.productId, progress=False)))
    buyers.start()
    # Kill once 50 orders are recorded: fewer than 100 can be sold by then, so the member dies mid-sale.
    assert wait_for(lambda: recorded(wired, fresh_sale.saleId) >= 50, timeout=60, every=0.02), "no orders came in"
    confirmed_at_kill = recorded(wired, fresh_sale.saleId, "CONFIRMED")
    stop(groups.processes("inventory")["inventory.1"].pid, signal.SIGKILL)

    # The broker hears nothing from it for a session timeout, then gives its partition to the others
    # (measured: 6.5 s after the kill, with either protocol, on a busy 2-core machine).
    def moved():
        members = owners(groups)
        return victim not in members and one_owner_each(members)

    assert wait_for(moved, timeout=SESSION_TIMEOUT_S + 6), owners(groups)
    survivors = owners(groups)
    assert set(survivors) == {"inventory-0", "inventory-2"}
    assert all(any(p in ps for ps in survivors.values()) for p in victims_partitions)

    buyers.join(timeout=180)
    assert not buyers.is_alive() and races, "the buyers never finished"
    race = races[0]
    refused = {b.body["error"]["code"] for b in race.buyers if b.status == 503}
    assert set(race.statuses()) <= {202, 409, 503} and refused <= {"BROKER_UNAVAILABLE"}, (race.statuses(), refused)
    assert confirmed_at_kill < 100, f"killed after the sale: {confirmed_at_kill} confirmed"
    accepted = [b.order_id for b in race.accepted]
    assert settle(wired, accepted, timeout=120) is not None, "orders left PENDING after a member was killed"
    state = invariants(wired, fresh_sale.saleId, accepted)
    assert (state.confirmedUnits, state.oversold, state.lost, state.availableStock) == (100, 0, 0, 0), state.as_dict()
    assert state.confirmed + state.cancelled == len(accepted), state.as_dict()
    assert state.ok, state.as_dict()

    # Static membership: the member comes back under its own id, and the group has three again.
    groups.restart("inventory")
    assert wait_for(lambda: set(owners(groups)) == {"inventory-0", "inventory-1", "inventory-2"}
                    and one_owner_each(owners(groups)) and all(owners(groups).values()), timeout=15), owners(groups)


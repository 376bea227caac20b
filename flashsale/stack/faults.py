"""Faults and recovery: kill, freeze or restart a component, as a crash, a stall or an operator would.

A restart knows what each server's loss costs: a memory broker comes back empty (every client is started
again, once the topics exist), and a Redis that lost its data has the sale rebuilt from PostgreSQL.
"""
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

from flashsale.adapters import kafka, postgres, redis as redis_adapter
from flashsale.events import INVENTORY_EVENTS
from flashsale.sale import current_sale, reconcile
from flashsale.stack.components import INFRA, SERVICES
from flashsale.stack.launcher import Launcher, log_path
from flashsale.stack.processes import StackError, alive, family, signal_all, stop, wait_until
from flashsale.stack.table import State


class Faults:
    def __init__(self, launcher: Launcher):
        self.launcher, self.settings, self.profile = launcher, launcher.settings, launcher.profile

    def kill(self, state: State, name: str, sig: int = signal.SIGKILL) -> list[int]:
        """Kill a service (every instance of it) or a server, as a crash would."""
        killed = []
        for info in state.of(name).values():
            if alive(info.pid):
                stop(info.pid, sig)
                killed.append(info.pid)
        if not killed and name not in (*INFRA, *SERVICES, *state.processes):
            raise StackError(f"Unknown component {name!r}: one of {', '.join((*SERVICES, *INFRA))}.")
        return killed

    @contextmanager
    def frozen(self, state: State, name: str) -> Iterator[list[int]]:
        """A component frozen (SIGSTOP) while the block runs, resumed (SIGCONT) when it ends, however it ends."""
        frozen = [pid for info in state.of(name).values() if alive(info.pid) for pid in family(info.pid)]
        if not frozen:
            raise StackError(f"Nothing to pause: {name!r} is not running (one of {', '.join((*SERVICES, *INFRA))}).")
        signal_all(frozen, signal.SIGSTOP)  # parents first: a stopped server starts no new child
        try:
            yield frozen
        finally:
            signal_all(frozen, signal.SIGCONT)

    def pause(self, state: State, name: str, seconds: float) -> list[int]:
        with self.frozen(state, name) as pids:
            time.sleep(seconds)
        return pids

    def restart(self, state: State, name: str, timeout: float = 60) -> None:
        """Stop `name` (cleanly) and start it again; wait until it is healthy. The caller holds the table's lock."""
        launcher = self.launcher
        for info in state.of(name).values():
            stop(info.pid, info.signal)
        part = state.processes.get(name)
        if part is not None and part.part_of:
            launcher.start_part(state, name, timeout)
        elif name in INFRA:
            forgets = name == "kafka" and self.forgetful_broker
            clients = launcher.stop_clients(state) if forgets else set()
            if name == "redis":  # with an empty Redis it would refuse every order (see recover_sale)
                self.kill(state, "inventory", signal.SIGTERM)
            launcher.start_infra(state, name, timeout)
            if forgets:  # a memory broker comes back empty
                launcher.ensure_topics(state)
                launcher.start_clients(state, clients, timeout)
            if name == "redis":
                self.recover_sale(state, timeout)
        else:
            launcher.service_up(state, name)
            launcher.wait_healthy(state, [name], timeout)

    def recover_sale(self, state: State, timeout: float) -> None:
        """After a Redis restart, with inventory stopped: rebuild the sale if Redis lost it, then start inventory.

        Redis's append-only file keeps the sale across a crash; a lost disk does not. Then the sale is rebuilt
        from the orders table (`sale.reconcile`), once the orders service has applied every decision that
        inventory published (nothing left unread on inventory.events). Until then the gateway answers 503
        (no sale); inventory, started last, decides what is still PENDING.
        """
        settings = state.wired(self.settings)
        redis = redis_adapter.connect(settings.redis_url)
        sale = current_sale(redis)
        if sale is None or not redis.exists(sale.keys.stock):
            self.launcher.service_up(state, "orders")
            wait_until(lambda: kafka.unread(settings.kafka_bootstrap_servers, "orders", [INVENTORY_EVENTS],
                                            settings.partitions, self.profile.reading) == 0,
                       timeout, "orders did not apply every inventory decision", log_path(self.settings.home, "orders"))
            with postgres.connect(settings.database_url) as pg:
                reconcile(pg, redis)
        self.launcher.service_up(state, "inventory")
        self.launcher.wait_healthy(state, ["inventory"], timeout)

    @property
    def forgetful_broker(self) -> bool:
        return self.profile.forgets_on_restart

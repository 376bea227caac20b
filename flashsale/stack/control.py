"""The stack: one object that starts, checks, breaks and stops every server and service.

The `flashsale` command, the notebooks and the tests all drive the stack through this class, so what a
learner runs is what the tests check. It is a facade over four parts, each with one job:

  table.py     the process table: what runs, where (read once per command; locked while one changes it)
  launcher.py  starts servers, services and one-off jobs, as the registries (components.py) say
  probes.py    is each part healthy; the status, as typed records
  faults.py    kill, freeze, restart, and what a restart must mend
"""
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

from flashsale.adapters import postgres, redis as redis_adapter
from flashsale.brokers import BrokerProfile, choose
from flashsale.sale import Sale, SaleCounts, current_sale, start_sale
from flashsale.settings import DEFAULT_ADMIN_TOKEN, Settings
from flashsale.stack import docker
from flashsale.stack.components import CONSUMERS, HTTP_SERVICES, INFRA, SCALABLE, SERVICES
from flashsale.stack.faults import Faults
from flashsale.stack.launcher import Launcher, log_path
from flashsale.stack.probes import Probes, Status
from flashsale.stack.processes import StackError, alive, require_free, stop, tail
from flashsale.stack.table import Process, ProcessTable, State

__all__ = ["INFRA", "SERVICES", "Stack"]

MAX_MEMBERS = 8  # a group may have more members than partitions: the extra ones sit idle, as Kafka teaches


class Stack:
    def __init__(self, settings: Settings | None = None, public: bool = False):
        """`public`: live mode (`flashsale up --public`), with this home's private admin token."""
        self.asked, self.public_asked = settings or Settings(), public
        self.home = self.asked.home.resolve()
        self.table = ProcessTable(self.home, self.noted)

    def noted(self, state: State) -> None:
        """Called with every state the table saves (the lab's stack keeps a ledger of the pids)."""

    @cached_property
    def settings(self) -> Settings:
        """The settings this stack acts with: the caller's, and what the running stack was started with.

        `up --fast`, `up --broker kafka --kafka-nodes 3` and `up --public` hold for every later command (kill,
        restart, status), until `down`: a command that names no broker acts on the one that runs. `up` with
        another broker than the running one is refused (`_same_broker`).
        """
        running, settings = self.table.read(), self.asked.model_copy(update={"home": self.home})
        if self.public_asked or settings.public or running.public:
            settings = self._public(settings)
        kept: dict[str, object] = {}
        if running.broker and running.processes:  # `up --fast` holds too: a later `kill kafka` acts on memory tansu
            kept.update(broker=running.broker, kafka_nodes=running.kafka_nodes, durable=running.durable)
        return settings.model_copy(update=kept)

    def _public(self, settings: Settings) -> Settings:
        """Live mode. The protections are Settings' own rule (it refuses the default admin token and turns the rate
        limit on); the launcher brings the token, made once per home."""
        from flashsale import live

        token = settings.admin_token
        if token == DEFAULT_ADMIN_TOKEN:
            token = live.admin_token(self.home)
        return Settings.model_validate({**settings.model_dump(), "public": True, "admin_token": token})

    @cached_property
    def profile(self) -> BrokerProfile:
        return choose(self.settings)

    @cached_property
    def _probes(self) -> Probes:
        return Probes(self.settings)

    @cached_property
    def _launcher(self) -> Launcher:
        return Launcher(self.settings, self.table, self._probes)

    @cached_property
    def _faults(self) -> Faults:
        return Faults(self._launcher)

    # --- up and down --------------------------------------------------------------------------------

    def up(self, stock: int | None = None, timeout: float = 60, services: tuple[str, ...] = tuple(SERVICES)) -> Status:
        """Start whatever is not running (the servers, then `services`), wait until all is healthy. Idempotent.

        All or nothing: an `up` that fails (a server or service that does not come up, Ctrl-C) stops what it started;
        what ran before keeps running. Before: a test's failed `up` left four servers running for two hours.
        """
        launcher = self._launcher
        with self.table.locked() as state:
            self._same_broker(state)
            for service in HTTP_SERVICES:  # refuse early, before starting anything, if a fixed port is taken
                if not alive(state.pid(service)):
                    require_free(launcher.port(service), service)
            before = dict(state.processes)
            try:
                self._bring_up(state, stock, timeout, services)
            except BaseException:  # what this call started, stopped; a dead node it restarted is noted as before
                started = [name for name, process in state.processes.items() if before.get(name) != process]
                self._launcher.stop_processes(state, started)
                state.processes.update({name: before[name] for name in started if name in before})
                self.table.save(state)
                raise
        return self.status()

    def _bring_up(self, state: State, stock: int | None, timeout: float, services: tuple[str, ...]) -> None:
        launcher = self._launcher
        state.public, state.durable, state.broker = self.settings.public, self.settings.durable, self.settings.broker
        state.kafka_nodes = self.settings.kafka_nodes
        self.table.save(state)
        forgets = self.profile.forgets_on_restart and not alive(state.pid("kafka"))
        clients = launcher.stop_clients(state) if forgets else set()
        launcher.infra_up(state, timeout)
        launcher.ensure_topics(state)
        launcher.start_clients(state, clients, timeout)
        settings = state.wired(self.settings)
        postgres.ensure_schema(settings.database_url)
        if stock is not None or current_sale(redis_adapter.connect(settings.redis_url)) is None:
            self._reset(settings, stock)
        for service in services:
            launcher.service_up(state, service)
        launcher.wait_healthy(state, services, timeout)

    def _same_broker(self, state: State) -> None:
        """A broker asked for by name (`--broker`, `--kafka-nodes`, `--fast`, or the environment) must be the one
        that runs, if one does: another would need every server started anew."""
        named = self.asked.model_fields_set & {"broker", "kafka_nodes", "durable"}
        running = any(alive(p.pid) for p in state.processes.values() if p.service is None)
        if named and running and choose(self.asked).name != self.profile.name:
            raise StackError(f"This stack runs {self.profile.name}, not {choose(self.asked).name}: `flashsale down` "
                             "first, then `flashsale up` with the broker you want.")

    def down(self) -> None:
        """Stop services first (they finish their batch and commit), then the servers in reverse start order."""
        with self.table.locked() as state:
            self._launcher.stop_processes(state, list(state.processes))
            state.public, state.durable = False, False
            self.table.save(state)
            if self.settings.infra == "docker":
                docker.down(self.settings)

    def wipe(self) -> None:
        """Down, and every file of this stack gone: the next `up` starts from empty servers (the bench does)."""
        self.down()
        shutil.rmtree(self.home, ignore_errors=True)

    # --- what runs ----------------------------------------------------------------------------------

    def processes(self, service: str | None = None) -> dict[str, Process]:
        """The processes started, by name (`inventory`, `inventory.1`, `kafka`...); those of one service if named."""
        return self.table.read().of(service)

    def wired(self) -> Settings:
        """The settings every service gets: ours, with the running servers' addresses filled in."""
        return self.table.read().wired(self.settings)

    def service_env(self, instance: int = 0, instances: int = 1, **changes: Any) -> dict[str, str]:
        """The environment a service process gets: the wired settings as FLASHSALE_* variables."""
        return self._launcher.service_env(self.table.read(), instance, instances, **changes)

    def status(self) -> Status:
        """One record per component (`flashsale status`; `.as_dict()` is its `--json`), and the sale's counts."""
        return self._probes.status(self.table.read())

    def sale(self) -> SaleCounts | None:
        return self._probes.sale(self.table.read())

    def log_path(self, name: str) -> Path:
        return log_path(self.home, name)

    def log_tail(self, name: str, lines: int = 40) -> str:
        return tail(self.log_path(name), lines)

    # --- change it ----------------------------------------------------------------------------------

    def launch(self, name: str, timeout: float = 60, **changes: Any) -> Process:
        """Start an on-demand process of this stack (the bench's `noop` server, notebook 08's `invoices` job), noted
        in the table like every other, and wait until it answers (a job: only until it runs). `changes`: settings
        of this process alone (`invoice_hold_s=5`)."""
        with self.table.locked() as state:
            self._launcher.start_service(state, name, **changes)
            self._launcher.wait_healthy(state, [name], timeout)
            return state.processes[name]

    def scale(self, service: str, instances: int, timeout: float = 60) -> None:
        """Run `instances` copies of a consumer service, or of the gateway.

        In a consumer group (Apache Kafka) members are added or removed and the others keep running: the group
        coordinator moves partitions to the newcomers, or from the leavers. On tansu each instance owns its
        share of the partitions by number (i of n), so every instance restarts with the new split. More gateways
        each get a port of their own (`status` lists them); the others keep serving.
        """
        split = service in CONSUMERS and not self.profile.groups  # tansu: instance i of n
        most = self.settings.partitions if split else MAX_MEMBERS
        if service not in SCALABLE or not 1 <= instances <= most:
            raise StackError(f"Only {', '.join(SCALABLE)} scale, from 1 to {most}"
                             + (" on tansu (one instance per partition)." if split else "."))
        with self.table.locked() as state:
            for name, info in sorted(state.instances(service).items(), key=lambda item: -item[1].instance):
                if split or info.instance >= instances:
                    stop(info.pid, info.signal)
                    del state.processes[name]
            state.scale[service] = instances
            self.table.save(state)
            self._launcher.service_up(state, service)
            self._launcher.wait_healthy(state, [service], timeout)

    def reset(self, stock: int | None = None, per_user_limit: int | None = None) -> Sale:
        """A new sale: stock set, the old sale's orders out of every count (the event-driven system's and the shop's).
        """
        return self._reset(self.wired(), stock, per_user_limit)

    def _reset(self, settings: Settings, stock: int | None = None, per_user_limit: int | None = None) -> Sale:
        with postgres.connect(settings.database_url) as pg:
            return start_sale(pg, redis_adapter.connect(settings.redis_url), settings.product_id,
                              settings.product_name, settings.initial_stock if stock is None else stock,
                              settings.per_user_limit if per_user_limit is None else per_user_limit)

    # --- faults and recovery (faults.py) ----------------------------------------------------------------

    def kill(self, name: str, sig: int = signal.SIGKILL) -> list[int]:
        """Kill a service (every instance of it) or a server, as a crash would."""
        return self._faults.kill(self.table.read(), name, sig)

    def pause(self, name: str, seconds: float) -> list[int]:
        """Freeze a component (SIGSTOP: every instance, and their children) for `seconds`, then resume it (SIGCONT).

        A stalled database or a frozen consumer: alive, holding its connections, answering nothing. Blocks for
        `seconds`; resumes also when interrupted.
        """
        return self._faults.pause(self.table.read(), name, seconds)

    @contextmanager
    def frozen(self, name: str) -> Iterator[list[int]]:
        """A component frozen (SIGSTOP) while the block runs, resumed (SIGCONT) when it ends, however it ends."""
        with self._faults.frozen(self.table.read(), name) as pids:
            yield pids

    def restart(self, name: str, timeout: float = 60) -> None:
        """Stop a component and start it again (a server keeps its address and, on disk, its data); wait until it
        is healthy, and mend what its loss cost (faults.py)."""
        with self.table.locked() as state:
            self._faults.restart(state, name, timeout)

"""Starts what the stack runs (servers, services, one-off jobs) and notes each process in the table.

Each start is saved to the table at once, with its pid: a command that dies halfway leaves nothing that
`flashsale down` cannot find. What to start comes from the registries (components.py); where, from the table.
"""
import json
import os
import sys
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

from flashsale.adapters import kafka
from flashsale.brokers import choose
from flashsale.settings import Settings
from flashsale.stack import components, docker, embedded
from flashsale.stack.components import ON_DEMAND, SERVICES, Launch
from flashsale.stack.probes import Probes
from flashsale.stack.processes import StackError, alive, free_port, require_free, spawn, stop, wait_until
from flashsale.stack.table import Process, ProcessTable, State


def log_path(home: Path, name: str) -> Path:
    return home / "logs" / f"{name}.log"


class Launcher:
    def __init__(self, settings: Settings, table: ProcessTable, probes: Probes):
        self.settings, self.table, self.probes = settings, table, probes
        self.home, self.profile = settings.home, choose(settings)

    # --- servers ----------------------------------------------------------------------------------

    def infra_up(self, state: State, timeout: float) -> None:
        if self.settings.infra == "external":
            return
        if self.settings.infra == "docker":
            state.addresses = docker.up(self.settings, timeout)
            return self.table.save(state)
        for name in components.servers(self.profile):
            self.start_infra(state, name, timeout)

    def start_infra(self, state: State, name: str, timeout: float = 60) -> None:
        """Start one embedded server unless it runs, and wait until it answers; it keeps its ports."""
        server = components.servers(self.profile)[name]
        if not any(alive(p.pid) for p in state.of(name).values()):
            ports = reusable(state.ports.get(name), server.ports())
            for flag, port in ports.items():
                require_free(port, f"{name} {flag}")
            started = server.start(self._launch(state, name, ports))
            state.ports[name], state.addresses[name] = ports, started.url
            for part, process in (started.parts or {name: started}).items():
                state.processes[part] = Process(pid=process.pid, url=process.url, signal=process.stop_signal,
                                                part_of=name if started.parts else None)
            self.table.save(state)
        else:  # some nodes of a server of several died: start those again
            for part, info in state.of(name).items():
                if info.part_of and not alive(info.pid):
                    self.start_part(state, part, timeout)
        first_name, first = next(iter(state.of(name).items()))
        address = state.addresses[name]
        wait_until(lambda: server.answers(address), max(timeout, server.starts_within), f"{name} did not start",
                   log_path(self.home, first_name), first.pid)

    def _launch(self, state: State, name: str, ports: dict[str, int]) -> Launch:
        server = components.servers(self.profile)[name]
        return Launch(self.home, ports, self.settings, {need: state.addresses[need] for need in server.needs})

    def start_part(self, state: State, part: str, timeout: float) -> None:
        """Start one node of a server of several again ("kafka-2"), and wait until it answers on its own."""
        info = state.processes[part]
        whole = str(info.part_of)
        server = components.servers(self.profile)[whole]
        if server.restart_part is None:
            raise StackError(f"{whole} has no parts to start one by one")
        started = server.restart_part(self._launch(state, whole, state.ports[whole]), part)
        state.processes[part] = info.model_copy(update={"pid": started.pid, "url": started.url})
        self.table.save(state)
        wait_until(lambda: server.answers(started.url), max(timeout, server.starts_within), f"{part} did not start",
                   log_path(self.home, part), started.pid)

    # --- services and jobs --------------------------------------------------------------------------

    def service_up(self, state: State, service: str) -> None:
        instances = state.scale.get(service, 1)
        for instance in range(instances):
            self.start_service(state, service, instance, instances)

    def start_service(self, state: State, service: str, instance: int = 0, instances: int = 1,
                      **changes: Any) -> None:
        """`python -m flashsale.services.<service>`, unless it runs; `changes`: settings of this process alone."""
        name = service if instance == 0 else f"{service}.{instance}"
        if alive(state.pid(name)):
            return
        spec = SERVICES.get(service) or ON_DEMAND[service]
        env = self.service_env(state, instance, instances, **changes)
        url = f"consumer {instance}" if not spec.job else "job"
        if spec.port_setting:  # the first on the configured port; more (`scale gateway N`) and extras on free ones
            port = self.port(service) if instance == 0 and not spec.on_demand else free_port()
            require_free(port, name)
            env[f"FLASHSALE_{spec.port_setting.upper()}"] = str(port)
            url = f"http://127.0.0.1:{port}"
        heartbeat = kafka.heartbeat_file(self.home, service, instance)
        heartbeat.parent.mkdir(parents=True, exist_ok=True)
        heartbeat.unlink(missing_ok=True)
        pid = spawn([sys.executable, "-m", f"flashsale.services.{service}"], log_path(self.home, name), env)
        state.processes[name] = Process(pid=pid, url=url, service=service, instance=instance)
        self.table.save(state)

    def service_env(self, state: State, instance: int = 0, instances: int = 1, **changes: Any) -> dict[str, str]:
        """The environment a service process gets: the wired settings as FLASHSALE_* variables."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
        wired = state.wired(self.settings).model_copy(update=changes)
        for field, value in wired.model_dump(mode="json").items():
            env[f"FLASHSALE_{field.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        env.update(FLASHSALE_INSTANCE=str(instance), FLASHSALE_INSTANCES=str(instances), PYTHONUNBUFFERED="1")
        return env

    def port(self, service: str) -> int:
        setting = SERVICES[service].port_setting
        if setting is None:
            raise StackError(f"{service} is a consumer: it has no port")
        port: int = getattr(self.settings, setting)
        return port

    def wait_healthy(self, state: State, services: Iterable[str], timeout: float) -> None:
        wanted = set(services)
        for name, info in state.processes.items():
            if info.service in wanted and not (SERVICES.get(info.service) or ON_DEMAND[info.service]).job:
                wait_until(partial(self.probes.healthy, state, name, info, quiet=False), timeout,
                           f"{name} did not become healthy", log_path(self.home, name), info.pid)

    def stop_processes(self, state: State, names: list[str]) -> None:
        """Stop these processes, services before servers, and take them out of the table."""
        started = components.servers(self.profile) if self.profile.engine else {}
        servers = [name for server in started for name in state.of(server)]
        for name in [*(n for n in state.processes if n not in servers), *reversed(servers)]:
            if name in names:
                stop(state.processes[name].pid, state.processes[name].signal)
        if any(name in names for name in state.of("seaweedfs")):  # its unix sockets outlive a kill
            for leftover in embedded.seaweedfs_sockets(state.ports.get("seaweedfs", {})):
                leftover.unlink(missing_ok=True)
        state.processes = {name: process for name, process in state.processes.items() if name not in names}
        self.table.save(state)

    # --- around a broker that forgets --------------------------------------------------------------

    def stop_clients(self, state: State) -> set[str]:
        """Stop every running service before a memory broker starts again; return which ran.

        The broker comes back empty and knows none of them. It rejects their idempotent producers' ids forever
        (UnknownProducerId: nothing is acknowledged again). And an old consumer, still working through messages
        it fetched before the crash, commits its old offsets to the new broker whenever a batch has nothing to
        publish: its successor then waits past the end of the new, empty topics (1 restart in 2 lost every order
        after it so, when the services were restarted only after the broker). New processes, started once the
        topics exist, get new producer ids and read the new topics from the start.
        """
        running = [info for info in state.processes.values() if info.service and alive(info.pid)]
        for info in running:
            stop(info.pid, info.signal)
        return {info.service for info in running if info.service in SERVICES}  # jobs and extras are not restarted

    def start_clients(self, state: State, services: set[str], timeout: float) -> None:
        for service in services:
            self.service_up(state, service)
        self.wait_healthy(state, services, timeout)

    def ensure_topics(self, state: State) -> None:
        kafka.ensure_topics(state.wired(self.settings).kafka_bootstrap_servers, self.settings.partitions,
                            self.settings.replicas)


def reusable(kept: dict[str, int] | None, fresh: dict[str, int]) -> dict[str, int]:
    """A server keeps its ports across restarts (its address stays the same), unless another server stands in
    its place now: tansu, then Apache Kafka (or one node, then three) in the same home. Measured: `flashsale
    bench --broker kafka` after a tansu bench in the same folder stopped with KeyError 'broker'."""
    return kept if kept and kept.keys() == fresh.keys() else fresh

"""The stack: one object that starts, checks, breaks and stops every server and service.

The `flashsale` command, the notebooks and the tests all drive the stack through this class, so what a
learner runs is what the tests check. What it runs comes from the registries in `components.py`; what is
running is in its process table (`state.py`), so a later command (or another notebook) finds it.
"""
import fcntl
import json
import os
import signal
import sys
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from flashsale.adapters import kafka, postgres, redis as redis_adapter
from flashsale.events import INVENTORY_EVENTS
from flashsale.sale import Sale, current_sale, reconcile, sale_counts, start_sale
from flashsale.settings import DEFAULT_ADMIN_TOKEN, Settings
from flashsale.stack import components, embedded, state as table
from flashsale.stack.components import CONSUMERS, HTTP_SERVICES, INFRA, SCALABLE, SERVICES, Launch
from flashsale.stack.processes import (
    StackError,
    alive,
    family,
    free_port,
    require_free,
    signal_all,
    spawn,
    stop,
    tail,
    wait_until,
)
from flashsale.stack.state import Process, State

HEARTBEAT_FRESH_S = 5
MAX_MEMBERS = 8  # a group may have more members than partitions: the extra ones sit idle, as Kafka teaches


class Stack:
    def __init__(self, settings: Settings | None = None, public: bool = False):
        """`public`: live mode (`flashsale up --public`), with this home's private admin token."""
        self.settings = settings or Settings()
        self.home = self.settings.home.resolve()
        self.state_file = self.home / "stack.json"
        running = self.load()
        if public or self.settings.public or running.public:
            self.settings = self._public(self.settings)
        # `up --durable` and `up --broker kafka` hold for every later command (kill, restart), until `down`
        kept: dict[str, object] = {"durable": True} if running.durable else {}
        if running.broker and running.processes:
            kept.update(broker=running.broker, kafka_nodes=running.kafka_nodes)
        self.settings = self.settings.model_copy(update=kept)

    def _public(self, settings: Settings) -> Settings:
        """Live mode, for every later command too, until `down`. The protections are Settings' own rule (it refuses
        the default admin token and turns the rate limit on); the launcher brings the token, made once per home."""
        from flashsale import live

        token = settings.admin_token
        if token == DEFAULT_ADMIN_TOKEN:
            token = live.admin_token(self.home)
        return Settings.model_validate({**settings.model_dump(), "public": True, "admin_token": token})

    # --- the process table -------------------------------------------------------------

    def load(self) -> State:
        return table.load(self.state_file)

    def save(self, state: State) -> None:
        table.save(self.state_file, state)

    def processes(self, service: str | None = None) -> dict[str, Process]:
        """The processes started, by name (`inventory`, `inventory.1`, `kafka`...); those of one service if named."""
        processes = self.load().processes
        return {n: p for n, p in processes.items() if service is None or service in (p.service or n, p.part_of)}

    @contextmanager
    def locked(self):
        """One command at a time changes the stack (two `up`s at once would start everything twice)."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def wired(self) -> Settings:
        """The settings every service gets: ours, with the running servers' addresses filled in."""
        addresses = self.load().addresses
        if self.settings.infra == "external" or not addresses:
            return self.settings.model_copy(update={"home": self.home})
        return self.settings.model_copy(update={"home": self.home, "kafka_bootstrap_servers": addresses["kafka"],
                                                "database_url": addresses["postgres"],
                                                "redis_url": addresses["redis"]})

    # --- up -------------------------------------------------------------------------------

    def up(self, stock: int | None = None, timeout: float = 60, services: tuple[str, ...] = tuple(SERVICES)) -> dict:
        """Start whatever is not running (the servers, then `services`), wait until all is healthy. Idempotent."""
        with self.locked():
            state = self.load()
            for service in HTTP_SERVICES:  # refuse early, before starting anything, if a fixed port is taken
                if not alive(state.processes.get(service, Process(pid=0, url="")).pid):
                    require_free(self._port(service), service)
            state.public, state.durable, state.broker = (self.settings.public, self.settings.durable,
                                                         self.settings.broker)
            state.kafka_nodes = self.settings.kafka_nodes
            self.save(state)
            broker_was_down = not alive(self._pid("kafka"))
            clients = self._stop_clients() if broker_was_down and self._forgetful_broker else set()
            self._infra_up(timeout)
            settings = self.wired()
            kafka.ensure_topics(settings.kafka_bootstrap_servers, settings.partitions, settings.replicas)
            self._start_clients(clients, timeout)
            postgres.ensure_schema(settings.database_url)
            if stock is not None or current_sale(redis_adapter.connect(settings.redis_url)) is None:
                self.reset(stock)
            for service in services:
                self._service_up(service)
            self._wait_healthy(services, timeout)
        return self.status()

    def _infra_up(self, timeout: float) -> None:
        if self.settings.infra == "external":
            return
        if self.settings.infra == "docker":
            from flashsale.stack import docker
            state = self.load()
            state.addresses = docker.up(self.settings, timeout)
            return self.save(state)
        for name in components.servers(self.settings):
            self.start_infra(name, timeout)

    def start_infra(self, name: str, timeout: float = 60) -> None:
        """Start one embedded server unless it runs, and wait until it answers; it keeps its ports."""
        server = components.servers(self.settings)[name]
        state = self.load()
        if not any(alive(p.pid) for p in self.processes(name).values()):
            ports = reusable(state.ports.get(name), server.ports())
            for flag, port in ports.items():
                require_free(port, f"{name} {flag}")
            started = server.start(self._launch(name, ports))
            state = self.load()
            state.ports[name], state.addresses[name] = ports, started.url
            for part, process in (started.parts or {name: started}).items():
                state.processes[part] = Process(pid=process.pid, url=process.url, signal=process.stop_signal,
                                                part_of=name if started.parts else None)
            self.save(state)
        else:  # some nodes of a server of several died: start those again
            for part, info in self.processes(name).items():
                if info.part_of and not alive(info.pid):
                    self._start_part(part, timeout)
        first = next(iter(self.processes(name).values()))
        wait_until(lambda: server.answers(self.load().addresses[name]), max(timeout, server.starts_within),
                   f"{name} did not start", self.log_path(next(iter(self.processes(name)))), first.pid)

    def _launch(self, name: str, ports: dict[str, int]) -> Launch:
        state, server = self.load(), components.servers(self.settings)[name]
        return Launch(self.home, ports, self.settings, {need: state.addresses[need] for need in server.needs})

    def _start_part(self, part: str, timeout: float) -> None:
        """Start one node of a server of several again ("kafka-2"), and wait until it answers on its own."""
        info = self.load().processes[part]
        whole = str(info.part_of)
        server = components.servers(self.settings)[whole]
        if server.restart_part is None:
            raise StackError(f"{whole} has no parts to start one by one")
        started = server.restart_part(self._launch(whole, self.load().ports[whole]), part)
        state = self.load()
        state.processes[part] = info.model_copy(update={"pid": started.pid, "url": started.url})
        self.save(state)
        wait_until(lambda: server.answers(started.url), max(timeout, server.starts_within), f"{part} did not start",
                   self.log_path(part), started.pid)

    def _service_up(self, service: str) -> None:
        instances = self.load().scale.get(service, 1)
        for instance in range(instances):
            self.start_service(service, instance, instances)

    def start_service(self, service: str, instance: int = 0, instances: int = 1) -> None:
        name = service if instance == 0 else f"{service}.{instance}"
        if alive(self._pid(name)):
            return
        env = self.service_env(instance, instances)
        url = f"consumer {instance}"
        if service in HTTP_SERVICES:  # the first on the configured port, more (`scale gateway N`) on free ones
            port = self._port(service) if instance == 0 else free_port()
            require_free(port, name)
            env[f"FLASHSALE_{str(SERVICES[service].port_setting).upper()}"] = str(port)
            url = f"http://127.0.0.1:{port}"
        heartbeat = kafka.heartbeat_file(self.home, service, instance)
        heartbeat.parent.mkdir(parents=True, exist_ok=True)
        heartbeat.unlink(missing_ok=True)
        pid = spawn([sys.executable, "-m", f"flashsale.services.{service}"], self.log_path(name), env)
        state = self.load()
        state.processes[name] = Process(pid=pid, url=url, service=service, instance=instance)
        self.save(state)

    def service_env(self, instance: int = 0, instances: int = 1) -> dict[str, str]:
        """The environment a service process gets: the wired settings as FLASHSALE_* variables."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
        for field, value in self.wired().model_dump(mode="json").items():
            env[f"FLASHSALE_{field.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        env.update(FLASHSALE_INSTANCE=str(instance), FLASHSALE_INSTANCES=str(instances), PYTHONUNBUFFERED="1")
        return env

    def service_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self._port(service)}"

    def _port(self, service: str) -> int:
        setting = SERVICES[service].port_setting
        if setting is None:
            raise StackError(f"{service} is a consumer: it has no port")
        return getattr(self.settings, setting)

    def _pid(self, name: str) -> int | None:
        process = self.load().processes.get(name)
        return process.pid if process else None

    def _wait_healthy(self, services, timeout: float) -> None:
        for name, info in self.load().processes.items():
            if info.service in services:
                wait_until(partial(self._healthy, name, info, quiet=False), timeout,
                           f"{name} did not become healthy", self.log_path(name), info.pid)

    # --- health and status ----------------------------------------------------------------

    def _healthy(self, name: str, info: Process | None, quiet: bool = True) -> bool:
        """Does it answer? A consumer: is it looping, and in its consumer group (`kafka.Membership`)?
        `quiet=False` (a wait) lets a probe's error through, for the wait to tell."""
        if info is None or info.service is None:  # a server: embedded, or docker's, or someone else's
            return self._server_answers(name)
        if not alive(info.pid):
            return False
        if info.service in HTTP_SERVICES:
            return _quietly(SERVICES[info.service].answers, info.url, quiet)
        beat = kafka.heartbeat_file(self.home, info.service, info.instance)
        if beat.exists() and time.time() - beat.stat().st_mtime < HEARTBEAT_FRESH_S:
            return True
        # A member left idle (more members than partitions) never hears that it joined: librdkafka's statistics of
        # a KIP-848 member with no partitions read as a member's that has not joined yet (measured: state "up",
        # join_state "init", 0 rebalances), and no assignment callback comes. The broker knows: it lists it, empty.
        return self.settings.consumer_groups and _quietly(self._idle, f"{info.service}-{info.instance}", quiet)

    def _idle(self, member: str) -> bool:
        """Does the broker list `member` ("inventory-3": group, then instance) in its group, with no partition?"""
        group = member.rsplit("-", 1)[0]
        view = kafka.describe_groups(self.wired().kafka_bootstrap_servers, [group])[group]
        return any(m["instance"] == member and not m["partitions"] for m in view["members"])

    def _server_answers(self, name: str) -> bool:
        settings = self.wired()
        url = {"kafka": settings.kafka_bootstrap_servers, "postgres": settings.database_url,
               "redis": settings.redis_url}.get(name) or self.load().addresses.get(name, "")
        server = components.servers(settings).get(name) or components.SERVERS[name]
        return _quietly(server.answers, url)

    def status(self) -> dict:
        state, settings = self.load(), self.wired()
        infra_urls = {"kafka": settings.kafka_bootstrap_servers, "postgres": settings.database_url,
                      "redis": settings.redis_url}
        infra: dict[str, dict[str, object]] = {}
        servers = [n for n, p in state.processes.items() if p.service is None and p.part_of is None]
        for name in (*INFRA, *(n for n in servers if n not in INFRA)):
            info = state.processes.get(name) or next(iter(self.processes(name).values()), None)
            infra[name] = {"pid": info.pid if info and alive(info.pid) else None,
                           "url": infra_urls.get(name) or (info.url if info else ""),
                           "healthy": self._healthy(name, None if info and info.part_of else info)}
        infra["kafka"]["broker"] = settings.broker if settings.infra == "embedded" else "kafka"
        nodes = {n: p for n, p in state.processes.items() if p.part_of == "kafka"}
        if nodes:  # several Kafka nodes: each on its own (`flashsale kill kafka-2` stops one)
            infra["kafka"]["nodes"] = [
                {"id": int(n.rsplit("-", 1)[1]), "name": n, "pid": p.pid if alive(p.pid) else None, "url": p.url,
                 "healthy": alive(p.pid) and _quietly(kafka.answers, p.url)} for n, p in nodes.items()]
        services: dict[str, dict[str, object]] = {}
        for name, info in state.processes.items():
            if info.service:
                services[name] = {"pid": info.pid if alive(info.pid) else None, "url": info.url,
                                  "healthy": self._healthy(name, info)}
        for name in SERVICES:
            services.setdefault(name, {"pid": None, "url": "", "healthy": False})
        for service in state.scale:
            services[service]["instances"] = [{"name": n, "pid": services[n]["pid"], "url": services[n]["url"],
                                               "healthy": services[n]["healthy"]} for n in state.instances(service)]
        return {"infra": infra, "services": services, "sale": self.sale() if infra["postgres"]["healthy"]
                and infra["redis"]["healthy"] else None}

    def sale(self) -> dict | None:
        settings = self.wired()
        redis = redis_adapter.connect(settings.redis_url)
        sale = current_sale(redis)
        if sale is None:
            return None
        with postgres.connect(settings.database_url) as pg:
            return sale_counts(pg, redis, sale)

    # --- faults and recovery ----------------------------------------------------------------

    def kill(self, name: str, sig: int = signal.SIGKILL) -> list[int]:
        """Kill a service (every instance of it) or a server, as a crash would."""
        killed = []
        for info in self.processes(name).values():
            if alive(info.pid):
                stop(info.pid, sig)
                killed.append(info.pid)
        if not killed and name not in (*INFRA, *SERVICES, *self.load().processes):
            raise StackError(f"Unknown component {name!r}: one of {', '.join((*SERVICES, *INFRA))}.")
        return killed

    def pause(self, name: str, seconds: float) -> list[int]:
        """Freeze a component (SIGSTOP: every instance, and their children) for `seconds`, then resume it (SIGCONT).

        A stalled database or a frozen consumer: alive, holding its connections, answering nothing. Blocks for
        `seconds`; resumes also when interrupted.
        """
        with self.frozen(name) as pids:
            time.sleep(seconds)
        return pids

    @contextmanager
    def frozen(self, name: str):
        """A component frozen (SIGSTOP) while the block runs, resumed (SIGCONT) when it ends, however it ends."""
        frozen = [pid for info in self.processes(name).values() if alive(info.pid) for pid in family(info.pid)]
        if not frozen:
            raise StackError(f"Nothing to pause: {name!r} is not running (one of {', '.join((*SERVICES, *INFRA))}).")
        signal_all(frozen, signal.SIGSTOP)  # parents first: a stopped server starts no new child
        try:
            yield frozen
        finally:
            signal_all(frozen, signal.SIGCONT)

    def restart(self, name: str, timeout: float = 60) -> None:
        with self.locked():
            for info in self.processes(name).values():
                stop(info.pid, info.signal)
            part = self.load().processes.get(name)
            if part is not None and part.part_of:
                self._start_part(name, timeout)
            elif name in INFRA:
                forgets = name == "kafka" and self._forgetful_broker
                clients = self._stop_clients() if forgets else set()
                if name == "redis":  # with an empty Redis it would refuse every order (see _recover_sale)
                    self.kill("inventory", signal.SIGTERM)
                self.start_infra(name, timeout)
                if forgets:  # a memory broker comes back empty
                    kafka.ensure_topics(self.wired().kafka_bootstrap_servers, self.settings.partitions,
                                        self.settings.replicas)
                    self._start_clients(clients, timeout)
                if name == "redis":
                    self._recover_sale(timeout)
            else:
                self._service_up(name)
                self._wait_healthy([name], timeout)

    def _recover_sale(self, timeout: float) -> None:
        """After a Redis restart, with inventory stopped: rebuild the sale if Redis lost it, then start inventory.

        Redis's append-only file keeps the sale across a crash; a lost disk does not. Then the sale is rebuilt
        from the orders table (`sale.reconcile`), once the orders service has applied every decision that
        inventory published (nothing left unread on inventory.events). Until then the gateway answers 503
        (no sale); inventory, started last, decides what is still PENDING.
        """
        settings = self.wired()
        redis = redis_adapter.connect(settings.redis_url)
        sale = current_sale(redis)
        if sale is None or not redis.exists(sale.keys.stock):
            self._service_up("orders")
            wait_until(lambda: kafka.unread(settings.kafka_bootstrap_servers, "orders", [INVENTORY_EVENTS],
                                            settings.partitions, settings.broker_on_s3) == 0,
                       timeout, "orders did not apply every inventory decision", self.log_path("orders"))
            with postgres.connect(settings.database_url) as pg:
                reconcile(pg, redis)
        self._service_up("inventory")
        self._wait_healthy(["inventory"], timeout)

    @property
    def _forgetful_broker(self) -> bool:
        return self.settings.infra == "embedded" and components.broker(self.settings).forgets_on_restart

    def _stop_clients(self) -> set[str]:
        """Stop every running service before a memory broker starts again; return which ran.

        The broker comes back empty and knows none of them. It rejects their idempotent producers' ids forever
        (UnknownProducerId: nothing is acknowledged again). And an old consumer, still working through messages
        it fetched before the crash, commits its old offsets to the new broker whenever a batch has nothing to
        publish: its successor then waits past the end of the new, empty topics (1 restart in 2 lost every order
        after it so, when the services were restarted only after the broker). New processes, started once the
        topics exist, get new producer ids and read the new topics from the start.
        """
        running = [info for info in self.load().processes.values() if info.service and alive(info.pid)]
        for info in running:
            stop(info.pid, info.signal)
        return {info.service for info in running if info.service}

    def _start_clients(self, services: set[str], timeout: float) -> None:
        for service in services:
            self._service_up(service)
        self._wait_healthy(services, timeout)

    def scale(self, service: str, instances: int, timeout: float = 60) -> None:
        """Run `instances` copies of a consumer service, or of the gateway.

        In a consumer group (Apache Kafka) members are added or removed and the others keep running: the group
        coordinator moves partitions to the newcomers, or from the leavers. On tansu each instance owns its
        share of the partitions by number (i of n), so every instance restarts with the new split. More gateways
        each get a port of their own (`status` lists them); the others keep serving.
        """
        split = service in CONSUMERS and not self.settings.consumer_groups  # tansu: instance i of n
        most = self.settings.partitions if split else MAX_MEMBERS
        if service not in SCALABLE or not 1 <= instances <= most:
            raise StackError(f"Only {', '.join(SCALABLE)} scale, from 1 to {most}"
                             + (" on tansu (one instance per partition)." if split else "."))
        with self.locked():
            state = self.load()
            for name, info in sorted(state.instances(service).items(), key=lambda item: -item[1].instance):
                if split or info.instance >= instances:
                    stop(info.pid, info.signal)
                    del state.processes[name]
            state.scale[service] = instances
            self.save(state)
            self._service_up(service)
            self._wait_healthy([service], timeout)

    def reset(self, stock: int | None = None, per_user_limit: int | None = None) -> Sale:
        settings = self.wired()
        with postgres.connect(settings.database_url) as pg:
            return start_sale(pg, redis_adapter.connect(settings.redis_url), settings.product_id,
                              settings.product_name, settings.initial_stock if stock is None else stock,
                              settings.per_user_limit if per_user_limit is None else per_user_limit)

    # --- down ---------------------------------------------------------------------------------

    def down(self) -> None:
        """Stop services first (they finish their batch and commit), then the servers in reverse start order."""
        with self.locked():
            state = self.load()
            servers = [name for server in components.servers(self.settings) for name in self.processes(server)]
            services = [name for name in state.processes if name not in servers]
            for name in [*services, *reversed(servers)]:
                stop(state.processes[name].pid, state.processes[name].signal)
            for leftover in embedded.seaweedfs_sockets(state.ports.get("seaweedfs", {})):
                leftover.unlink(missing_ok=True)
            state.processes, state.public, state.durable = {}, False, False
            self.save(state)
            if self.settings.infra == "docker":
                from flashsale.stack import docker
                docker.down(self.settings)

    def log_path(self, name: str) -> Path:
        return self.home / "logs" / f"{name}.log"

    def log_tail(self, name: str, lines: int = 40) -> str:
        return tail(self.log_path(name), lines)


def _quietly(answers, url: str, quiet: bool = True) -> bool:
    """A probe of something that may be down: for `status` any failure to answer is a plain no. Not `quiet`, the
    error goes on to the caller (`wait_until` keeps the last one and says it, should the wait fail)."""
    try:
        return bool(answers(url))
    except Exception:
        if not quiet:
            raise
        return False


def reusable(kept: dict[str, int] | None, fresh: dict[str, int]) -> dict[str, int]:
    """A server keeps its ports across restarts (its address stays the same), unless another server stands in
    its place now: tansu, then Apache Kafka (or one node, then three) in the same home. Measured: `flashsale
    bench --broker kafka` after a tansu bench in the same folder stopped with KeyError 'broker'."""
    return kept if kept and kept.keys() == fresh.keys() else fresh

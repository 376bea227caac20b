"""The stack: one object that starts, checks, breaks and stops every server and service.

The `flashsale` command, the notebooks and the tests all drive the stack
through this class, so what a learner runs is what the tests check. It keeps
its process table in `<home>/stack.json`, so a later command (or another
notebook) finds what an earlier one started.
"""
import fcntl
import json
import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from flashsale.adapters import kafka, postgres, redis as redis_adapter
from flashsale.events import INVENTORY_EVENTS
from flashsale.sale import Sale, current_sale, reconcile, sale_counts, start_sale
from flashsale.settings import Settings
from flashsale.stack import embedded
from flashsale.stack.processes import StackError, alive, free_port, port_open, require_free, spawn, stop, tail, wait_until

INFRA = ("kafka", "postgres", "redis")
CONSUMERS = ("orders", "inventory", "notifications")
HTTP_SERVICES = ("gateway", "shop")
SERVICES = (*CONSUMERS, *HTTP_SERVICES)
HEARTBEAT_FRESH_S = 5


class Stack:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings()
        self.home = self.settings.home.resolve()
        self.state_file = self.home / "stack.json"
        if self.settings.public or self.load().get("public"):
            self.settings = self._public(self.settings)
        if self.load().get("durable"):  # `up --durable` holds for every later command (kill, restart), until `down`
            self.settings = self.settings.model_copy(update={"durable": True})

    def _public(self, settings: Settings) -> Settings:
        """Live mode keeps its protections on for every later command, until `down`."""
        from flashsale import live

        protections = {"public": True}
        if settings.rate_limit_per_s == 0:
            protections.update(rate_limit_per_s=live.PUBLIC_RATE_LIMIT_PER_S, rate_limit_burst=live.PUBLIC_BURST)
        if settings.admin_token == Settings.model_fields["admin_token"].default:
            protections["admin_token"] = live.admin_token(self.home)
        return settings.model_copy(update=protections)

    # --- the process table -------------------------------------------------------------

    def load(self) -> dict:
        if self.state_file.exists():
            return json.loads(self.state_file.read_text())
        return {"ports": {}, "addresses": {}, "processes": {}, "scale": {}}

    def save(self, state: dict) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(state, indent=2))

    @contextmanager
    def locked(self):
        """One command at a time changes the stack (two `up`s at once would start everything twice)."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def wired(self) -> Settings:
        """The settings every service gets: ours, with the running servers' addresses filled in."""
        addresses = self.load()["addresses"]
        if self.settings.infra == "external" or not addresses:
            return self.settings.model_copy(update={"home": self.home})
        return self.settings.model_copy(update={"home": self.home, "kafka_bootstrap_servers": addresses["kafka"],
                                                "database_url": addresses["postgres"],
                                                "redis_url": addresses["redis"]})

    # --- up -------------------------------------------------------------------------------

    def up(self, stock: int | None = None, timeout: float = 60, services: tuple[str, ...] = SERVICES) -> dict:
        """Start whatever is not running (the servers, then `services`), wait until all is healthy. Idempotent."""
        with self.locked():
            state = self.load()
            for service in HTTP_SERVICES:  # refuse early, before starting anything, if a fixed port is taken
                if not alive(state["processes"].get(service, {}).get("pid")):
                    require_free(getattr(self.settings, f"{service}_port"), service)
            state["public"], state["durable"] = self.settings.public, self.settings.durable
            self.save(state)
            broker_was_down = not alive(state["processes"].get("kafka", {}).get("pid"))
            clients = self._stop_clients() if broker_was_down and self._memory_broker else set()
            self._infra_up(timeout)
            settings = self.wired()
            kafka.ensure_topics(settings.kafka_bootstrap_servers, settings.partitions)
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
            state["addresses"] = docker.up(self.settings, timeout)
            return self.save(state)
        for name in INFRA:
            self.start_infra(name)
        state = self.load()
        for name in INFRA:
            info = state["processes"][name]
            wait_until(lambda: self._healthy(name, info), timeout, f"{name} did not start",
                       self.home / "logs" / f"{name}.log", info["pid"])

    def start_infra(self, name: str) -> None:
        """Start one embedded server unless it runs; it keeps its port, so the services keep their address."""
        state = self.load()
        if alive(state["processes"].get(name, {}).get("pid")):
            return
        port = state["ports"].get(name) or free_port()
        require_free(port, name)
        if name == "kafka":
            s3 = self._seaweedfs(state) if self.settings.durable else None
            started = embedded.start_kafka(self.home, port, s3)
        else:
            started = getattr(embedded, f"start_{name}")(self.home, port)
        state = self.load()
        state["ports"][name] = port
        state["addresses"][name] = started.url
        state["processes"][name] = {"pid": started.pid, "url": started.url, "signal": started.stop_signal}
        self.save(state)

    def _seaweedfs(self, state: dict) -> str:
        """The S3 server under a durable broker: started before it, kept when it restarts, on the same ports."""
        info = state["processes"].get("seaweedfs", {})
        if not alive(info.get("pid")):
            ports = state["ports"].get("seaweedfs")
            ports = ports if isinstance(ports, dict) else embedded.seaweedfs_ports()
            for flag, port in ports.items():
                require_free(port, f"seaweedfs -{flag}")
            started = embedded.start_seaweedfs(self.home, ports)
            info = {"pid": started.pid, "url": started.url, "signal": started.stop_signal}
            state["ports"]["seaweedfs"], state["processes"]["seaweedfs"] = ports, info
            self.save(state)
            wait_until(lambda: embedded.bucket_ready(started.url, "tansu"), 60, "seaweedfs did not start",
                       self.home / "logs" / "seaweedfs.log", started.pid)
        return info["url"]

    def _service_up(self, service: str) -> None:
        instances = self.load()["scale"].get(service, 1)
        for instance in range(instances):
            self.start_service(service, instance, instances)

    def start_service(self, service: str, instance: int = 0, instances: int = 1) -> None:
        name = service if instance == 0 else f"{service}.{instance}"
        state = self.load()
        if alive(state["processes"].get(name, {}).get("pid")):
            return
        if service in HTTP_SERVICES:
            require_free(getattr(self.settings, f"{service}_port"), service)
        (self.home / "run").mkdir(parents=True, exist_ok=True)
        (self.home / "run" / f"{service}-{instance}.alive").unlink(missing_ok=True)
        pid = spawn([sys.executable, "-m", f"flashsale.services.{service}"], self.home / "logs" / f"{name}.log",
                    self._service_env(instance, instances))
        url = getattr(self.settings, f"{service}_url") if service in HTTP_SERVICES else f"consumer {instance}/{instances}"
        state = self.load()
        state["processes"][name] = {"pid": pid, "url": url, "service": service, "instance": instance,
                                    "signal": signal.SIGTERM}
        self.save(state)

    def _service_env(self, instance: int, instances: int) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
        for field, value in self.wired().model_dump(mode="json").items():
            env[f"FLASHSALE_{field.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        env.update(FLASHSALE_INSTANCE=str(instance), FLASHSALE_INSTANCES=str(instances), PYTHONUNBUFFERED="1")
        return env

    def _wait_healthy(self, names, timeout: float) -> None:
        for name, info in self.load()["processes"].items():
            if info.get("service", name) in names:
                wait_until(lambda: self._healthy(name, info), timeout, f"{name} did not become healthy",
                           self.home / "logs" / f"{name}.log", info["pid"])

    # --- health and status ----------------------------------------------------------------

    def _healthy(self, name: str, info: dict) -> bool:
        try:
            service = info.get("service", name)
            settings = self.wired()
            if service == "kafka":
                host, port = settings.kafka_bootstrap_servers.split(",")[0].rsplit(":", 1)
                return port_open(host, int(port))
            if service == "postgres":
                with postgres.connect(settings.database_url) as conn:
                    return conn.execute("SELECT 1").fetchone() == (1,)
            if service == "redis":
                return redis_adapter.connect(settings.redis_url).ping()
            if not alive(info.get("pid")):
                return False
            if service in HTTP_SERVICES:
                return httpx.get(f"{info['url']}/healthz", timeout=3).status_code == 200
            beat = self.home / "run" / f"{service}-{info.get('instance', 0)}.alive"
            return beat.exists() and time.time() - beat.stat().st_mtime < HEARTBEAT_FRESH_S
        except Exception:
            return False

    def status(self) -> dict:
        state, settings = self.load(), self.wired()
        infra_urls = {"kafka": settings.kafka_bootstrap_servers, "postgres": settings.database_url,
                      "redis": settings.redis_url}
        infra = {name: {"pid": state["processes"].get(name, {}).get("pid"), "url": infra_urls[name],
                        "healthy": self._healthy(name, state["processes"].get(name, {}))} for name in INFRA}
        if "seaweedfs" in state["processes"]:  # the S3 server under a durable broker
            weed = state["processes"]["seaweedfs"]
            infra["seaweedfs"] = {"pid": weed["pid"], "url": weed["url"], "healthy": alive(weed["pid"])}
        services = {}
        for name, info in state["processes"].items():
            if "service" in info:
                services[name] = {"pid": info["pid"] if alive(info["pid"]) else None, "url": info["url"],
                                  "healthy": self._healthy(name, info)}
        for name in SERVICES:
            services.setdefault(name, {"pid": None, "url": "", "healthy": False})
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
        for proc_name, info in self.load()["processes"].items():
            if info.get("service", proc_name) == name and alive(info["pid"]):
                stop(info["pid"], sig)
                killed.append(info["pid"])
        if not killed and name not in (*INFRA, *SERVICES):
            raise StackError(f"Unknown component {name!r}: one of {', '.join((*SERVICES, *INFRA))}.")
        return killed

    def restart(self, name: str, timeout: float = 60) -> None:
        with self.locked():
            for proc_name, info in self.load()["processes"].items():
                if info.get("service", proc_name) == name:
                    stop(info["pid"], info.get("signal", signal.SIGTERM))
            if name in INFRA:
                clients = self._stop_clients() if name == "kafka" and self._memory_broker else set()
                if name == "redis":  # with an empty Redis it would refuse every order (see _recover_sale)
                    self.kill("inventory", signal.SIGTERM)
                self.start_infra(name)
                info = self.load()["processes"][name]
                wait_until(lambda: self._healthy(name, info), timeout, f"{name} did not restart",
                           self.home / "logs" / f"{name}.log", info["pid"])
                if name == "kafka":  # a memory broker comes back empty
                    kafka.ensure_topics(self.wired().kafka_bootstrap_servers, self.settings.partitions)
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
    def _memory_broker(self) -> bool:
        return self.settings.infra == "embedded" and not self.settings.durable

    def _stop_clients(self) -> set[str]:
        """Stop every running service before a memory broker starts again; return which ran.

        The broker comes back empty and knows none of them. It rejects their idempotent producers' ids forever
        (UnknownProducerId: nothing is acknowledged again). And an old consumer, still working through messages
        it fetched before the crash, commits its old offsets to the new broker whenever a batch has nothing to
        publish: its successor then waits past the end of the new, empty topics (1 restart in 2 lost every order
        after it so, when the services were restarted only after the broker). New processes, started once the
        topics exist, get new producer ids and read the new topics from the start.
        """
        running = [info for info in self.load()["processes"].values() if "service" in info and alive(info["pid"])]
        for info in running:
            stop(info["pid"], info.get("signal", signal.SIGTERM))
        return {info["service"] for info in running}

    def _start_clients(self, services: set[str], timeout: float) -> None:
        for service in services:
            self._service_up(service)
        self._wait_healthy(services, timeout)

    def scale(self, service: str, instances: int, timeout: float = 60) -> None:
        """Run `instances` copies of a consumer; each owns its share of the partitions."""
        if service not in CONSUMERS or not 1 <= instances <= self.settings.partitions:
            raise StackError(f"Only consumers scale, from 1 to {self.settings.partitions} (one per partition).")
        with self.locked():
            state = self.load()
            for name, info in list(state["processes"].items()):
                if info.get("service") == service:
                    stop(info["pid"], signal.SIGTERM)
                    del state["processes"][name]
            state["scale"][service] = instances
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
        """Stop services first (they finish their batch and commit), then the servers, the broker before its S3."""
        with self.locked():
            state = self.load()
            order = sorted(state["processes"], key=lambda n: (n in (*INFRA, "seaweedfs"), n == "seaweedfs"))
            for name in order:
                info = state["processes"][name]
                stop(info["pid"], info.get("signal", signal.SIGTERM))
            weed_ports = state["ports"].get("seaweedfs")
            for leftover in embedded.seaweedfs_sockets(weed_ports if isinstance(weed_ports, dict) else {}):
                leftover.unlink(missing_ok=True)
            state["processes"], state["public"], state["durable"] = {}, False, False
            self.save(state)
            if self.settings.infra == "docker":
                from flashsale.stack import docker
                docker.down(self.settings)

    def log_path(self, name: str) -> Path:
        return self.home / "logs" / f"{name}.log"

    def log_tail(self, name: str, lines: int = 40) -> str:
        return tail(self.log_path(name), lines)

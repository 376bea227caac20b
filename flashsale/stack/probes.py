"""Is each part of the stack healthy? A server answers its own protocol; an HTTP service its /healthz; a consumer
is looping and in its group. And the status that `flashsale status` prints, as typed records.
"""
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from flashsale.adapters import kafka, postgres, redis as redis_adapter
from flashsale.brokers import choose
from flashsale.readable import Readable
from flashsale.sale import SaleCounts, current_sale, sale_counts
from flashsale.settings import Settings
from flashsale.stack.components import INFRA, ON_DEMAND, PROBES, SERVERS, SERVICES
from flashsale.stack.processes import alive
from flashsale.stack.table import Process, State

HEARTBEAT_FRESH_S = 5


@dataclass(frozen=True)
class Node(Readable):
    """One node of a server of several: `flashsale kill kafka-2` stops one."""
    id: int
    name: str
    pid: int | None
    url: str
    healthy: bool


@dataclass(frozen=True)
class Instance(Readable):
    """One instance of a scaled service."""
    name: str
    pid: int | None
    url: str
    healthy: bool


@dataclass(frozen=True)
class Component(Readable):
    pid: int | None  # None: not running, or not ours (docker's, someone else's)
    url: str
    healthy: bool
    broker: str | None = None  # the broker's: "tansu" or "kafka"
    nodes: tuple[Node, ...] | None = None  # a broker of several nodes
    instances: tuple[Instance, ...] | None = None  # a scaled service

    def as_dict(self) -> dict[str, Any]:
        """The contract's form: pid, url, healthy; and broker, nodes, instances where they are known."""
        extra = {"broker": self.broker, "nodes": [n.as_dict() for n in self.nodes or ()] or None,
                 "instances": [i.as_dict() for i in self.instances] if self.instances is not None else None}
        return {"pid": self.pid, "url": self.url, "healthy": self.healthy,
                **{key: value for key, value in extra.items() if value is not None}}


@dataclass(frozen=True)
class Status(Readable):
    infra: dict[str, Component]
    services: dict[str, Component]
    sale: SaleCounts | None  # None when no sale runs, or PostgreSQL or Redis does not answer

    def as_dict(self) -> dict[str, Any]:
        """`flashsale status --json`, as the contract gives it."""
        return {"infra": {name: c.as_dict() for name, c in self.infra.items()},
                "services": {name: c.as_dict() for name, c in self.services.items()},
                "sale": self.sale.as_dict() if self.sale else None}

    @property
    def anything_healthy(self) -> bool:
        return any(c.healthy for group in (self.infra, self.services) for c in group.values())


class Probes:
    def __init__(self, settings: Settings):
        self.settings, self.profile = settings, choose(settings)

    def healthy(self, state: State, name: str, info: Process | None, quiet: bool = True) -> bool:
        """Does it answer? A consumer: is it looping, and in its consumer group (`kafka.Membership`)?
        `quiet=False` (a wait) lets a probe's error through, for the wait to tell."""
        if info is None or info.service is None:  # a server: embedded, or docker's, or someone else's
            return self.server_answers(state, name)
        if not alive(info.pid):
            return False
        service = SERVICES.get(info.service) or ON_DEMAND.get(info.service)
        if service is not None and service.port_setting:
            return _quietly(service.answers, info.url, quiet)
        beat = kafka.heartbeat_file(self.settings.home, info.service, info.instance)
        if beat.exists() and time.time() - beat.stat().st_mtime < HEARTBEAT_FRESH_S:
            return True
        # A member left idle (more members than partitions) never hears that it joined: librdkafka's statistics of
        # a KIP-848 member with no partitions read as a member's that has not joined yet (measured: state "up",
        # join_state "init", 0 rebalances), and no assignment callback comes. The broker knows: it lists it, empty.
        return self.profile.groups and _quietly(partial(self.idle, state), f"{info.service}-{info.instance}", quiet)

    def idle(self, state: State, member: str) -> bool:
        """Does the broker list `member` ("inventory-3": group, then instance) in its group, with no partition?"""
        group = member.rsplit("-", 1)[0]
        view = kafka.describe_groups(state.wired(self.settings).kafka_bootstrap_servers, [group])[group]
        return any(m.instance == member and not m.partitions for m in view.members)

    def server_answers(self, state: State, name: str) -> bool:
        settings = state.wired(self.settings)
        url = {"kafka": settings.kafka_bootstrap_servers, "postgres": settings.database_url,
               "redis": settings.redis_url}.get(name) or state.addresses.get(name, "")
        return _quietly(PROBES.get(name) or SERVERS[name].answers, url)

    def status(self, state: State) -> Status:
        settings = state.wired(self.settings)
        infra_urls = {"kafka": settings.kafka_bootstrap_servers, "postgres": settings.database_url,
                      "redis": settings.redis_url}
        infra: dict[str, Component] = {}
        servers = [n for n, p in state.processes.items() if p.service is None and p.part_of is None]
        nodes = tuple(Node(int(n.rsplit("-", 1)[1]), n, p.pid if alive(p.pid) else None, p.url,
                           alive(p.pid) and _quietly(kafka.answers, p.url))
                      for n, p in state.processes.items() if p.part_of == "kafka")
        for name in (*INFRA, *(n for n in servers if n not in INFRA)):
            info = state.processes.get(name) or next(iter(state.of(name).values()), None)
            infra[name] = Component(info.pid if info and alive(info.pid) else None,
                                    infra_urls.get(name) or (info.url if info else ""),
                                    self.healthy(state, name, None if info and info.part_of else info),
                                    broker=self.profile.family if name == "kafka" else None,
                                    nodes=(nodes or None) if name == "kafka" else None)
        services = {name: Component(info.pid if alive(info.pid) else None, info.url, self.healthy(state, name, info))
                    for name, info in state.processes.items() if info.service in SERVICES}
        for name in SERVICES:
            services.setdefault(name, Component(None, "", False))
        for service in state.scale:
            scaled = services[service]
            services[service] = Component(scaled.pid, scaled.url, scaled.healthy, instances=tuple(
                Instance(n, services[n].pid, services[n].url, services[n].healthy) for n in state.instances(service)))
        counted = infra["postgres"].healthy and infra["redis"].healthy
        return Status(infra, services, self.sale(state) if counted else None)

    def sale(self, state: State) -> SaleCounts | None:
        settings = state.wired(self.settings)
        redis = redis_adapter.connect(settings.redis_url)
        sale = current_sale(redis)
        if sale is None:
            return None
        with postgres.connect(settings.database_url) as pg:
            return sale_counts(pg, redis, sale)


def _quietly(answers: Callable[[str], bool], url: str, quiet: bool = True) -> bool:
    """A probe of something that may be down: for `status` any failure to answer is a plain no. Not `quiet`, the
    error goes on to the caller (`wait_until` keeps the last one and says it, should the wait fail)."""
    try:
        return bool(answers(url))
    except Exception:
        if not quiet:
            raise
        return False

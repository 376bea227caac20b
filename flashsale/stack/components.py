"""The stack's components by name: how each starts, and how to tell that it answers.

The launcher (`control.Stack`) walks these tables. A new broker, server or service is one entry here, not
another branch in the launcher.
"""
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from flashsale.adapters import kafka, postgres, redis as redis_adapter
from flashsale.settings import Settings
from flashsale.stack import apache_kafka, embedded
from flashsale.stack.processes import Started, free_port


@dataclass(frozen=True)
class Launch:
    """What a server needs to start: its home, its ports, the settings, and the addresses of what it needs."""
    home: Path
    ports: dict[str, int]
    settings: Settings
    needs: dict[str, str]


@dataclass(frozen=True)
class Server:
    start: Callable[[Launch], Started]
    answers: Callable[[str], bool]  # given its address: does it serve requests?
    ports: Callable[[], dict[str, int]] = lambda: {"port": free_port()}
    needs: tuple[str, ...] = ()  # servers that must run first; their addresses come in `Launch.needs`
    starts_within: float = 60  # seconds, on a busy 2-core machine
    forgets_on_restart: bool = False  # memory storage: it comes back empty
    compiles: bool = False  # a JVM compiles its code as it runs: a benchmark warms it up with the load it measures
    # A server of several processes (`Started.parts`, "kafka-2"): how one part starts again, alone
    restart_part: Callable[[Launch, str], Started] | None = None


def _postgres_answers(url: str) -> bool:
    with postgres.connect(url) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


BROKERS = {
    "tansu": Server(lambda s: embedded.start_tansu(s.home, s.ports["port"]), kafka.answers,
                    forgets_on_restart=True),
    "tansu-s3": Server(lambda s: embedded.start_tansu(s.home, s.ports["port"], s.needs["seaweedfs"]),
                       kafka.answers, needs=("seaweedfs",)),
    # A JVM: ~4 s to start here when the machine is idle, over 60 s while two other JVMs and a suite ran.
    "kafka": Server(lambda s: apache_kafka.start(s.home, s.ports, s.settings), kafka.answers, apache_kafka.ports,
                    starts_within=180, compiles=True),
    # Three JVMs, formatted and started together: the quorum needs two of them before any answers.
    "kafka-3-nodes": Server(lambda s: apache_kafka.start_cluster(s.home, s.ports, s.settings), kafka.answers,
                            lambda: apache_kafka.cluster_ports(3), starts_within=300, compiles=True,
                            restart_part=lambda s, name: apache_kafka.start_node(
                                s.home, int(name.rsplit("-", 1)[1]), s.settings, s.ports)),
}

SERVERS = {
    "seaweedfs": Server(lambda s: embedded.start_seaweedfs(s.home, s.ports),
                        lambda url: embedded.bucket_ready(url, "tansu"), embedded.seaweedfs_ports),
    "postgres": Server(lambda s: embedded.start_postgres(s.home, s.ports["port"]), _postgres_answers),
    "redis": Server(lambda s: embedded.start_redis(s.home, s.ports["port"]),
                    lambda url: redis_adapter.connect(url).ping()),
}

INFRA = ("kafka", "postgres", "redis")  # what every mode has, and `status` shows


def broker(settings: Settings) -> Server:
    if settings.broker == "kafka" and settings.kafka_nodes > 1:
        return BROKERS[f"kafka-{settings.kafka_nodes}-nodes"]
    return BROKERS["tansu-s3" if settings.broker_on_s3 else settings.broker]


def servers(settings: Settings) -> dict[str, Server]:
    """The embedded servers of this stack, in start order: what a server needs comes before it."""
    chosen = {"kafka": broker(settings), "postgres": SERVERS["postgres"], "redis": SERVERS["redis"]}
    return {**{name: SERVERS[name] for server in chosen.values() for name in server.needs}, **chosen}


@dataclass(frozen=True)
class Service:
    """A process of ours, `python -m flashsale.services.<name>`: a consumer, or an HTTP server on a port."""
    port_setting: str | None = None  # the Settings field with its port, for an HTTP service
    scales: bool = False  # an HTTP service that runs as several processes, each on a port of its own

    def answers(self, url: str) -> bool:
        return httpx.get(f"{url}/healthz", timeout=3).status_code == 200


SERVICES = {
    "orders": Service(),
    "inventory": Service(),
    "payments": Service(),
    "notifications": Service(),
    "psp": Service("psp_port"),  # the payment provider, before those that call it
    # Every gateway reads every partition of notification.events, so each one tells its own buyers everything.
    "gateway": Service("gateway_port", scales=True),
    "shop": Service("shop_port"),
}
CONSUMERS = tuple(name for name, service in SERVICES.items() if service.port_setting is None)
HTTP_SERVICES = tuple(name for name, service in SERVICES.items() if service.port_setting)
SCALABLE = (*CONSUMERS, *(name for name, service in SERVICES.items() if service.scales))

"""The stack's components by name: how each starts, and how to tell that it answers.

The launcher walks these tables. A new server or service is one entry here; a new broker is one profile
(brokers.py), started here by its engine: never another branch in the launcher.
"""
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from flashsale.adapters import kafka, postgres, redis as redis_adapter
from flashsale.brokers import BrokerProfile
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


def _one_port() -> dict[str, int]:
    return {"port": free_port()}


@dataclass(frozen=True)
class Server:
    start: Callable[[Launch], Started]
    answers: Callable[[str], bool]  # given its address: does it serve requests?
    ports: Callable[[], dict[str, int]] = _one_port
    needs: tuple[str, ...] = ()  # servers that must run first; their addresses come in `Launch.needs`
    starts_within: float = 60  # seconds, on a busy 2-core machine
    # A server of several processes (`Started.parts`, "kafka-2"): how one part starts again, alone
    restart_part: Callable[[Launch, str], Started] | None = None


def _postgres_answers(url: str) -> bool:
    with postgres.connect(url) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def _redis_answers(url: str) -> bool:
    return bool(redis_adapter.connect(url).ping())


def tansu(profile: BrokerProfile) -> Server:
    if profile.storage == "s3":  # its log on SeaweedFS's S3: it survives a crash of the broker
        return Server(lambda s: embedded.start_tansu(s.home, s.ports["port"], s.needs["seaweedfs"]), kafka.answers,
                      needs=("seaweedfs",))
    return Server(lambda s: embedded.start_tansu(s.home, s.ports["port"]), kafka.answers)


def apache(profile: BrokerProfile) -> Server:
    if profile.nodes == 1:  # A JVM: ~4 s to start here when the machine is idle, over 60 s while two other JVMs and
        # a suite ran.
        return Server(lambda s: apache_kafka.start(s.home, s.ports, s.settings), kafka.answers, apache_kafka.ports,
                      starts_within=180)
    # Three JVMs, formatted and started together: the quorum needs two of them before any answers.
    return Server(lambda s: apache_kafka.start_cluster(s.home, s.ports, s.settings), kafka.answers,
                  lambda: apache_kafka.cluster_ports(profile.nodes), starts_within=300,
                  restart_part=lambda s, name: apache_kafka.start_node(s.home, int(name.rsplit("-", 1)[1]),
                                                                       s.settings, s.ports))


ENGINES: dict[str, Callable[[BrokerProfile], Server]] = {"tansu": tansu, "kafka": apache}  # by BrokerProfile.engine

SERVERS = {
    "seaweedfs": Server(lambda s: embedded.start_seaweedfs(s.home, s.ports),
                        lambda url: embedded.bucket_ready(url, "tansu"), embedded.seaweedfs_ports),
    "postgres": Server(lambda s: embedded.start_postgres(s.home, s.ports["port"]), _postgres_answers),
    "redis": Server(lambda s: embedded.start_redis(s.home, s.ports["port"]), _redis_answers),
}
# How to tell that a server of any mode answers (embedded, docker's, someone else's), given its address
PROBES: dict[str, Callable[[str], bool]] = {"kafka": kafka.answers, "postgres": _postgres_answers,
                                            "redis": _redis_answers}

INFRA = ("kafka", "postgres", "redis")  # what every mode has, and `status` shows


def servers(profile: BrokerProfile) -> dict[str, Server]:
    """The embedded servers of this stack, in start order: what a server needs comes before it."""
    if profile.engine is None:
        raise ValueError(f"the {profile.name} broker is not started by the stack")
    chosen = {"kafka": ENGINES[profile.engine](profile), "postgres": SERVERS["postgres"], "redis": SERVERS["redis"]}
    return {**{name: SERVERS[name] for server in chosen.values() for name in server.needs}, **chosen}


@dataclass(frozen=True)
class Service:
    """A process of ours, `python -m flashsale.services.<name>`: a consumer, an HTTP server on a port, or a job."""
    port_setting: str | None = None  # the Settings field with its port, for an HTTP service
    scales: bool = False  # an HTTP service that runs as several processes, each on a port of its own
    on_demand: bool = False  # not part of the stack: started when asked (`Stack.launch`), on a free port
    job: bool = False  # runs to its end and exits: never waited for to be healthy

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
ON_DEMAND = {
    "noop": Service("gateway_port", on_demand=True),  # the bench's ceiling: the gateway's server, nothing behind it
    "invoices": Service(on_demand=True, job=True),  # notebook 08's transactional job: reads order.events to its end
}
CONSUMERS = tuple(name for name, service in SERVICES.items() if service.port_setting is None)
HTTP_SERVICES = tuple(name for name, service in SERVICES.items() if service.port_setting)
SCALABLE = (*CONSUMERS, *(name for name, service in SERVICES.items() if service.scales))

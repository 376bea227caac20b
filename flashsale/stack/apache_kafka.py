"""Apache Kafka, embedded: one KRaft node, broker and controller in one, as a child process on loopback;
or three such nodes (`--kafka-nodes 3`), each a controller and a broker, every partition on all three.

It runs from Kafka's own jars (`flashsale kafka install` puts them in the user's cache) with Java 17+:
`kafka.tools.StorageTool format --standalone` once, then `kafka.Kafka server.properties`. Its data stays
under `<home>/kafka` (`<home>/kafka-N` for node N), so a restart, or a `kill -9`, keeps the log and every
group's offsets.
"""
import base64
import os
from collections.abc import Callable
from pathlib import Path

from flashsale.settings import Settings
from flashsale.stack import kafka_dist
from flashsale.stack.processes import StackError, Started, free_ports, spawn, tail

# One node: every internal topic has one replica, or groups and transactions would wait for two more brokers.
ONE_NODE = {
    "offsets.topic.replication.factor": 1,
    "transaction.state.log.replication.factor": 1,
    "transaction.state.log.min.isr": 1,
    "share.coordinator.state.topic.replication.factor": 1,
    "share.coordinator.state.topic.min.isr": 1,
    # 50 partitions each by default: a handful of groups needs few, and each one costs start-up time.
    "offsets.topic.num.partitions": 3,
    "transaction.state.log.num.partitions": 3,
}

# Three nodes: every partition has three replicas, and a write acknowledged with acks=all is on at least two of
# them (`min.insync.replicas`): one node can die without losing an acknowledged event, and with two down the
# producers get no acknowledgement (NOT_ENOUGH_REPLICAS), so the gateway answers 503, never 202.
THREE_NODES = {
    "default.replication.factor": 3,
    "min.insync.replicas": 2,
    "offsets.topic.replication.factor": 3,
    "transaction.state.log.replication.factor": 3,
    "transaction.state.log.min.isr": 2,
    "share.coordinator.state.topic.replication.factor": 3,
    "share.coordinator.state.topic.min.isr": 2,
    "offsets.topic.num.partitions": 3,
    "transaction.state.log.num.partitions": 3,
    # The controllers notice a dead node after 3 s of silence (9 s by default), and only then move its partitions'
    # leadership, the groups' coordinator among them. That must take less than the members' 6 s session: measured
    # here with the default, killing the node that coordinated the groups left every service dead, fenced
    # (FENCED_INSTANCE_ID) when it rejoined after its session had expired.
    "broker.session.timeout.ms": 3000,
    "broker.heartbeat.interval.ms": 500,
    # And the members' own session, longer than that whole move: adapters/kafka/consume.py, CLUSTER_SESSION_MS, says
    # why (the classic protocol's members ask for it themselves; KIP-848's get it from here).
    "group.consumer.session.timeout.ms": 15000,
    "group.consumer.min.session.timeout.ms": 6000,
}

# Groups, chosen for a lab where a member is killed on purpose and the room watches what happens next.
# (Kafka's defaults suit a data centre, where a 45 s pause beats a needless rebalance.)
LAB_GROUPS = {
    # Classic protocol: the broker waits 3 s for more members before the first assignment; a lab starts at once.
    "group.initial.rebalance.delay.ms": 0,
    # KIP-848: a member's heartbeat carries its assignment, so the heartbeat interval is how soon a new member
    # gets partitions (5 s by default; measured here: a second member waited 5.0 s for its share).
    "group.consumer.heartbeat.interval.ms": 500,
    "group.consumer.min.heartbeat.interval.ms": 500,
    # How long a silent member (kill -9) keeps its partitions, and how long a static member that restarts has
    # to take them back: 45 s by default, a long wait in a lesson; 6 s is the classic protocol's minimum too.
    "group.consumer.session.timeout.ms": 6000,
    "group.consumer.min.session.timeout.ms": 6000,
}

# A typo in a topic name should fail, not silently create a one-partition topic: the kit creates its topics.
TOPICS = {"auto.create.topics.enable": "false"}

JVM = ("-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
       # slf4j-simple's log lines, with the time, so a slow start can be read from the log
       "-Dorg.slf4j.simpleLogger.showDateTime=true", "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS")


def ports() -> dict[str, int]:
    broker, controller = free_ports(2)
    return {"broker": broker, "controller": controller}


def server_properties(data: Path, broker: int, controller: int) -> dict[str, object]:
    return {
        "node.id": 1,
        "process.roles": "broker,controller",
        "listeners": f"PLAINTEXT://127.0.0.1:{broker},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker}",
        "controller.listener.names": "CONTROLLER",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data),
        **ONE_NODE, **LAB_GROUPS, **TOPICS,
    }


def cluster_id(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    """A new cluster's id, as Kafka's own `Uuid.randomUuid()` makes it: never one that starts with "-".

    StorageTool reads such an id as an option (`error: argument --cluster-id/-t: expected one argument`): with a
    plain uuid4, 1 format in 64 failed, and CI's Kafka pass formats dozens of nodes.
    """
    while (made := base64.urlsafe_b64encode(random_bytes(16)).decode().rstrip("=")).startswith("-"):
        pass
    return made


def cluster_ports(nodes: int) -> dict[str, int]:
    """Every node's two ports, chosen together: each node's configuration names all the controllers."""
    chosen = free_ports(2 * nodes)
    return {**{f"broker-{n}": chosen[n - 1] for n in range(1, nodes + 1)},
            **{f"controller-{n}": chosen[nodes + n - 1] for n in range(1, nodes + 1)}}


def node_properties(node: int, data: Path, ports: dict[str, int]) -> dict[str, object]:
    """Node `node` of a cluster: a static quorum of every node's controller (`controller.quorum.voters`)."""
    nodes = len(ports) // 2
    voters = ",".join(f"{n}@127.0.0.1:{ports[f'controller-{n}']}" for n in range(1, nodes + 1))
    return {
        **server_properties(data, ports[f"broker-{node}"], ports[f"controller-{node}"]),
        "node.id": node,
        "controller.quorum.voters": voters,
        "controller.quorum.bootstrap.servers": None,  # the voters are static: every node knows them all
        **THREE_NODES,
    }


def start_cluster(home: Path, ports: dict[str, int], settings: Settings) -> Started:
    """Format every node (in parallel), start them all, and return the cluster: its address lists every node."""
    import subprocess

    nodes = len(ports) // 2
    cluster = cluster_id()
    formats = []
    for node in range(1, nodes + 1):
        config, log = _write_node(home, node, ports)
        if not (config.parent / "data" / "meta.properties").exists():
            with open(log, "ab") as out:
                formats.append((log, subprocess.Popen(kafka_dist.command(
                    "kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(config), heap_mb=128),
                    stdout=out, stderr=subprocess.STDOUT)))
    for log, formatting in formats:
        if formatting.wait():
            raise StackError(f"formatting a Kafka node's storage failed: see {log}\n{tail(log)}")
    parts = {f"kafka-{node}": start_node(home, node, settings, ports) for node in range(1, nodes + 1)}
    return Started(parts["kafka-1"].pid, ",".join(part.url for part in parts.values()), parts=parts)


def start_node(home: Path, node: int, settings: Settings, ports: dict[str, int]) -> Started:
    """Start node `node` of a formatted cluster (again, after a kill): its address is its PLAINTEXT listener."""
    config, log = _write_node(home, node, ports)
    pid = spawn(kafka_dist.command("kafka.Kafka", str(config), heap_mb=settings.kafka_heap_mb, jvm=JVM), log)
    return Started(pid, f"127.0.0.1:{ports[f'broker-{node}']}")


def _write_node(home: Path, node: int, ports: dict[str, int]) -> tuple[Path, Path]:
    folder = home / f"kafka-{node}"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "server.properties"
    properties = node_properties(node, folder / "data", ports)
    config.write_text("".join(f"{key}={value}\n" for key, value in properties.items() if value is not None))
    log = home / "logs" / f"kafka-{node}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return config, log


def start(home: Path, ports: dict[str, int], settings: Settings) -> Started:
    """Format the node's storage the first time, then start it; the address is its PLAINTEXT listener."""
    folder = home / "kafka"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "server.properties"
    properties = server_properties(folder / "data", ports["broker"], ports["controller"])
    config.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
    log = home / "logs" / "kafka.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    if not (folder / "data" / "meta.properties").exists():
        _format(config, log)
    pid = spawn(kafka_dist.command("kafka.Kafka", str(config), heap_mb=settings.kafka_heap_mb, jvm=JVM), log)
    return Started(pid, f"127.0.0.1:{ports['broker']}")


def _format(config: Path, log: Path) -> None:
    import subprocess

    cluster = cluster_id()
    with open(log, "ab") as out:
        done = subprocess.run(kafka_dist.command("kafka.tools.StorageTool", "format", "--standalone",
                                                 "-t", cluster, "-c", str(config), heap_mb=256),
                              stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        raise StackError(f"formatting Kafka's storage failed: see {log}\n{tail(log)}")

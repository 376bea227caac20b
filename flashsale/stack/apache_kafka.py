"""Apache Kafka, embedded: one KRaft node, broker and controller in one, as a child process on loopback.

It runs from Kafka's own jars (`flashsale kafka install` puts them in the user's cache) with Java 17+:
`kafka.tools.StorageTool format --standalone` once, then `kafka.Kafka server.properties`. Its data stays
under `<home>/kafka`, so a restart, or a `kill -9`, keeps the log and every group's offsets.
"""
import base64
import uuid
from pathlib import Path

from flashsale.settings import Settings
from flashsale.stack import kafka_dist
from flashsale.stack.processes import StackError, Started, free_ports, spawn

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

    cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    with open(log, "ab") as out:
        done = subprocess.run(kafka_dist.command("kafka.tools.StorageTool", "format", "--standalone",
                                                 "-t", cluster, "-c", str(config), heap_mb=256),
                              stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        raise StackError(f"formatting Kafka's storage failed: see {log}")

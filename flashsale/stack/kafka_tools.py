"""Kafka's own command-line tools (kafka-topics, kafka-consumer-groups, kafka-console-consumer, ...), run from
the installed jars against the stack's broker: `flashsale kafka tool NAME ARGS...`.

Kafka's bin/NAME.sh scripts are one line each, `kafka-run-class.sh <main class> "$@"`; TOOLS is that line for
the tools a lab uses, read from the scripts and checked against the 4.1.1 jars (a test runs each one's --help).
The broker's address goes in as `--bootstrap-server` unless the arguments name one (or a controller).
"""
import subprocess
import sys
from dataclasses import dataclass

from confluent_kafka import KafkaException

from flashsale.adapters import kafka
from flashsale.settings import Settings
from flashsale.stack import kafka_dist
from flashsale.stack.processes import StackError


@dataclass(frozen=True)
class Tool:
    main: str  # the class its bin/*.sh script runs
    needs_broker: bool = True  # takes --bootstrap-server (kafka-dump-log reads files instead)


TOOLS = {
    "kafka-topics": Tool("org.apache.kafka.tools.TopicCommand"),
    "kafka-consumer-groups": Tool("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"),
    "kafka-console-consumer": Tool("org.apache.kafka.tools.consumer.ConsoleConsumer"),
    "kafka-console-producer": Tool("org.apache.kafka.tools.ConsoleProducer"),
    "kafka-get-offsets": Tool("org.apache.kafka.tools.GetOffsetShell"),
    "kafka-configs": Tool("kafka.admin.ConfigCommand"),
    "kafka-broker-api-versions": Tool("org.apache.kafka.tools.BrokerApiVersionsCommand"),
    "kafka-groups": Tool("org.apache.kafka.tools.GroupsCommand"),
    "kafka-transactions": Tool("org.apache.kafka.tools.TransactionsCommand"),
    "kafka-delete-records": Tool("org.apache.kafka.tools.DeleteRecordsCommand"),
    "kafka-log-dirs": Tool("org.apache.kafka.tools.LogDirsCommand"),
    "kafka-metadata-quorum": Tool("org.apache.kafka.tools.MetadataQuorumCommand"),
    "kafka-features": Tool("org.apache.kafka.tools.FeatureCommand"),
    "kafka-leader-election": Tool("org.apache.kafka.tools.LeaderElectionCommand"),
    "kafka-reassign-partitions": Tool("org.apache.kafka.tools.reassign.ReassignPartitionsCommand"),
    "kafka-acls": Tool("org.apache.kafka.tools.AclCommand"),
    "kafka-consumer-perf-test": Tool("org.apache.kafka.tools.ConsumerPerformance"),
    "kafka-verifiable-producer": Tool("org.apache.kafka.tools.VerifiableProducer"),
    "kafka-verifiable-consumer": Tool("org.apache.kafka.tools.VerifiableConsumer"),
    "kafka-dump-log": Tool("kafka.tools.DumpLogSegments", needs_broker=False),
}
USAGE = ("flashsale kafka tool NAME [ARGS...]: one of Kafka's own tools against the stack's broker (its "
         "--bootstrap-server added); `flashsale kafka tool NAME --help` for the tool's own help. NAME is one of:")
# Measured with tansu 0.6 and Kafka 4.1.1's tools (README, "Kafka's own tools and kcat"): said before each run.
ON_TANSU = ("note: on tansu, topics, offsets, group lists and the console consumer work; a group shows no members "
            "(the services own their partitions by number) and LOG-END-OFFSET can trail the log, so LAG can be "
            "negative; the console producer wants --producer-property enable.idempotence=false; for all of Kafka: "
            "`flashsale up --broker kafka`")
ADDRESSED = ("--bootstrap-server", "--bootstrap-controller", "--broker-list")  # the user named where to go
# A tool runs for seconds: a small heap, no optimising compiler (it would compile for longer than the tool runs),
# and the log at WARN (slf4j-simple with Maven's jars, log4j2 with a release's) so that only the answer shows.
JVM = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
       "-Dlog4j2.level=WARN")


def command(name: str, args: list[str], bootstrap: str | None) -> list[str]:
    """The argv that runs tool `name` with `args`; `--bootstrap-server bootstrap` first unless `args` name one."""
    tool = TOOLS.get(name.removesuffix(".sh"))
    if tool is None:
        raise StackError(f"Unknown Kafka tool {name!r}: one of {', '.join(TOOLS)}.")
    if not kafka_dist.has_tools(kafka_dist.jars()):
        raise StackError(f"Kafka's command-line tools are not in {kafka_dist.jars()} (installed before the kit "
                         f"fetched them): run `flashsale kafka install` again.")
    named = any(arg.split("=")[0] in ADDRESSED for arg in args)
    address = ["--bootstrap-server", bootstrap] if tool.needs_broker and bootstrap and not named else []
    return kafka_dist.command(tool.main, *address, *args, heap_mb=256, jvm=JVM)


def output(name: str, *args: str, bootstrap: str | None, timeout: float = 120) -> str:
    """What the tool prints (its errors included), for a notebook cell: `output("kafka-topics", "--list", ...)`.
    Without Java or Kafka's jars it says so and what to run, instead of stopping the lesson."""
    try:
        # errors="replace": a topic may hold bytes that are not UTF-8 (exercise 13's poison message is), and the
        # console consumer prints them as they are
        done = subprocess.run(command(name, list(args), bootstrap), capture_output=True, text=True, errors="replace",
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except StackError as error:
        return f"({name} did not run: {error})"
    except subprocess.TimeoutExpired as expired:
        partial = expired.stdout or b""  # bytes, even with text=True
        return f"{partial.decode(errors='replace') if isinstance(partial, bytes) else partial}" \
               f"({name} stopped after {timeout:g} s)"
    # stderr too: the tools say there what a table cannot ("Consumer group 'inventory' has no active members.")
    return done.stdout + done.stderr + (f"(exit status {done.returncode})" if done.returncode else "")


def main(name: str | None, args: list[str], settings: Settings) -> int:
    """`flashsale kafka tool NAME ARGS...`: run it in the foreground (stdin too: kafka-console-producer reads it)."""
    if name in (None, "-h", "--help"):
        print(USAGE + "\n  " + "\n  ".join(TOOLS))
        return 0
    bootstrap = settings.kafka_bootstrap_servers
    if TOOLS.get(name.removesuffix(".sh"), Tool("")).needs_broker and not _answers(bootstrap):
        raise StackError(f"No Kafka broker answers at {bootstrap}: start the stack first (`flashsale up`, with "
                         f"the same FLASHSALE_HOME).")
    if settings.broker == "tansu" and settings.infra == "embedded":
        print(ON_TANSU, file=sys.stderr)
    return subprocess.run(command(name, args, bootstrap)).returncode


def _answers(bootstrap: str) -> bool:
    """Does a broker answer there? A slow one is no answer (measured: a 2 s metadata request timed out on a
    loaded machine, with the broker up), so give it 15 s."""
    try:
        return kafka.answers(bootstrap, timeout=15)
    except KafkaException:
        return False

"""`flashsale kafka tool`: which class runs, and where the broker's address goes."""
import sys

import pytest

from flashsale.stack import kafka_dist, kafka_tools
from flashsale.stack.processes import StackError


@pytest.fixture
def jars(tmp_path, monkeypatch):
    (tmp_path / "kafka_2.13-4.1.1.jar").touch()
    (tmp_path / "kafka-tools-4.1.1.jar").touch()
    monkeypatch.setattr(kafka_dist, "jars", lambda: tmp_path)
    monkeypatch.setattr(kafka_dist, "java", lambda: "/usr/bin/java")
    return tmp_path


def after_classpath(argv: list[str]) -> list[str]:
    return argv[argv.index("-cp") + 2:]


def test_the_stacks_broker_goes_in_as_bootstrap_server(jars):
    argv = kafka_tools.command("kafka-consumer-groups", ["--describe", "--group", "inventory"], "127.0.0.1:9")
    assert after_classpath(argv) == ["org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                                     "--bootstrap-server", "127.0.0.1:9", "--describe", "--group", "inventory"]
    assert argv[argv.index("-cp") + 1] == f"{jars}/*"


@pytest.mark.parametrize("given", [["--bootstrap-server", "other:9092"], ["--bootstrap-server=other:9092"],
                                   ["--bootstrap-controller", "other:9093"]])
def test_an_address_the_user_gave_is_kept_and_none_added(jars, given):
    argv = kafka_tools.command("kafka-topics", ["--list", *given], "127.0.0.1:9")
    assert after_classpath(argv) == ["org.apache.kafka.tools.TopicCommand", "--list", *given]


def test_a_tool_that_reads_files_gets_no_broker_and_the_sh_suffix_is_accepted(jars):
    argv = kafka_tools.command("kafka-dump-log.sh", ["--files", "00.log"], "127.0.0.1:9")
    assert after_classpath(argv) == ["kafka.tools.DumpLogSegments", "--files", "00.log"]


def test_an_unknown_tool_is_refused_with_the_known_ones(jars):
    with pytest.raises(StackError, match="Unknown Kafka tool 'kafka-topic'.*kafka-topics, kafka-consumer-groups"):
        kafka_tools.command("kafka-topic", [], "127.0.0.1:9")


def test_jars_installed_before_the_tools_say_to_install_again(jars):
    (jars / "kafka-tools-4.1.1.jar").unlink()
    (jars / "kafka-tools-api-4.1.1.jar").touch()  # the broker's own: not the tools
    with pytest.raises(StackError, match="run `flashsale kafka install` again"):
        kafka_tools.command("kafka-topics", ["--list"], "127.0.0.1:9")


def test_a_notebook_without_kafkas_jars_is_told_what_to_run_instead_of_stopping(monkeypatch):
    def not_installed():
        raise StackError(kafka_dist.NOT_INSTALLED)

    monkeypatch.setattr(kafka_dist, "jars", not_installed)
    said = kafka_tools.output("kafka-topics", "--list", bootstrap="127.0.0.1:9")
    assert said.startswith("(kafka-topics did not run: Apache Kafka is not installed: run `flashsale kafka install`")


def test_a_broker_too_slow_to_answer_is_no_broker_not_a_traceback(jars, monkeypatch):
    """Seen in the offline test on a loaded machine: the metadata request timed out and raised."""
    from confluent_kafka import KafkaError, KafkaException

    from flashsale.settings import Settings

    def timed_out(bootstrap, timeout):
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT))

    monkeypatch.setattr(kafka_tools.kafka, "answers", timed_out)
    with pytest.raises(StackError, match="No Kafka broker answers at 127.0.0.1:9: start the stack first"):
        kafka_tools.main("kafka-topics", ["--list"], Settings(kafka_bootstrap_servers="127.0.0.1:9"))


def test_bytes_that_are_not_utf_8_in_a_topic_are_printed_replaced_instead_of_raising(jars, monkeypatch):
    # what CI's console consumer met: a log that began with test_bad_input's poison message
    printed = "import sys; sys.stdout.buffer.write(b'\\xff\\xfepoison-1\\n')"
    monkeypatch.setattr(kafka_tools, "command", lambda *args: [sys.executable, "-c", printed])
    said = kafka_tools.output("kafka-console-consumer", "--topic", "order.events", bootstrap="127.0.0.1:9")
    assert said == "\ufffd\ufffdpoison-1\n"

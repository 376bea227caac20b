"""`flashsale kafka install` with the real Maven: the broker's jars from Maven Central, through ~/.m2."""
import shutil
import subprocess
import time

import pytest

from flashsale.stack import kafka_dist
from flashsale.stack.processes import StackError

pytestmark = pytest.mark.broker_free  # the same on either broker: CI's tansu pass runs it


def need_maven() -> None:
    if not shutil.which("mvn"):
        pytest.skip("mvn is not on the PATH: `flashsale kafka install` downloads the release instead "
                    "(tests/unit/test_kafka_dist.py covers that path)")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """One install into a cache of this module's own (a few seconds once ~/.m2 holds the jars)."""
    need_maven()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg")))
        patch.delenv("FLASHSALE_KAFKA_HOME", raising=False)
        yield kafka_dist.install(quiet=True)


def test_maven_installs_the_broker_the_clients_and_a_logging_binding_into_the_cache(installed):
    assert installed == kafka_dist.cache() == kafka_dist.jars()
    names = {path.name for path in installed.iterdir()}
    assert {f"kafka_2.13-{kafka_dist.KAFKA_VERSION}.jar", f"kafka-clients-{kafka_dist.KAFKA_VERSION}.jar",
            "slf4j-simple-1.7.36.jar"} <= names
    assert sorted(path.name for path in installed.parent.iterdir()) == ["libs"]  # no pom, no half-done folder
    started = time.monotonic()
    assert kafka_dist.install(quiet=True) == installed
    assert time.monotonic() - started < 0.5  # the second install finds the first


def test_the_installed_jars_run_the_broker_main_class(installed):
    done = subprocess.run(kafka_dist.command("kafka.Kafka", "--version", heap_mb=128), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == kafka_dist.KAFKA_VERSION


def test_a_version_maven_central_does_not_have_fails_in_one_sentence_and_leaves_nothing(tmp_path, monkeypatch):
    need_maven()
    cache = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("FLASHSALE_KAFKA_HOME", raising=False)
    monkeypatch.setattr(kafka_dist, "KAFKA_VERSION", "0.0.0-no-such-release")
    with pytest.raises(StackError, match=r"Maven could not fetch Apache Kafka \(.*kafka_2\.13:jar:0\.0\.0") as failed:
        kafka_dist.install(quiet=True)
    assert "\n" not in str(failed.value)
    assert [path for path in cache.rglob("*") if not path.is_dir()] == []

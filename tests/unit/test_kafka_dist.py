"""Finding Apache Kafka and a Java to run it; installing Kafka from a release served over real HTTP."""
import functools
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from flashsale.stack import kafka_dist
from flashsale.stack.processes import StackError

RELEASE = f"kafka_2.13-{kafka_dist.KAFKA_VERSION}"
JARS = [f"kafka_2.13-{kafka_dist.KAFKA_VERSION}.jar", f"kafka-clients-{kafka_dist.KAFKA_VERSION}.jar",
        f"kafka-tools-{kafka_dist.KAFKA_VERSION}.jar", "slf4j-api-1.7.36.jar"]  # a release's libs/ has the tools


def gpg_print_md(name: str, data: bytes) -> str:
    """What `gpg --print-md SHA512 <name>` prints, as Apache publishes it: upper-case groups of 8, six a line."""
    groups = [hashlib.sha512(data).hexdigest().upper()[i:i + 8] for i in range(0, 128, 8)]
    lines = [" ".join(groups[i:i + 6]) for i in range(0, len(groups), 6)]
    return f"{name}: " + f"\n{' ' * (len(name) + 2)}".join(lines) + "\n"


def release_tarball() -> bytes:
    """A small Kafka release: jars under libs/, other folders, and entries that try to get out."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        def add(name: str, data: bytes = b"PK fake jar") -> None:
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))

        for jar in JARS:
            add(f"{RELEASE}/libs/{jar}")
        add(f"{RELEASE}/bin/kafka-server-start.sh", b"#!/bin/sh\n")
        add(f"{RELEASE}/config/server.properties", b"process.roles=broker,controller\n")
        # From the folder the jars land in (<tmp>/xdg/flashsale/kafka-<v>/.install-*/libs), five levels up is <tmp>.
        add("../../../../../evil.jar", b"escaped")
        add(f"{RELEASE}/libs/../../../../../../../evil.jar", b"escaped")
        link = tarfile.TarInfo(f"{RELEASE}/libs/link.jar")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    return buffer.getvalue()


@pytest.fixture
def no_maven(tmp_path, monkeypatch) -> Path:
    """A PATH with nothing on it (so no mvn, no java), a cache of the test's own, no FLASHSALE_KAFKA_HOME."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("FLASHSALE_KAFKA_HOME", raising=False)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    return tmp_path / "xdg"


@pytest.fixture
def mirror(tmp_path, monkeypatch, no_maven):
    """An Apache mirror on 127.0.0.1: the release and its .sha512; `mirror.requests` lists the paths asked for."""
    folder = tmp_path / "mirror" / "kafka" / kafka_dist.KAFKA_VERSION  # Apache's layout: <base>/kafka/<version>/
    folder.mkdir(parents=True)
    tarball = release_tarball()
    (folder / f"{RELEASE}.tgz").write_bytes(tarball)
    (folder / f"{RELEASE}.tgz.sha512").write_text(gpg_print_md(f"{RELEASE}.tgz", tarball))
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path.rpartition("/")[2])
            super().do_GET()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(tmp_path / "mirror")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/kafka/{kafka_dist.KAFKA_VERSION}"  # no trailing slash
    monkeypatch.setenv("FLASHSALE_KAFKA_MIRROR", base)
    server.folder, server.requests = folder, requests
    yield server
    server.shutdown()
    server.server_close()


def fake_java(folder: Path, version_line: str) -> Path:
    """A `java` that answers `-version` as a real one does: on stderr."""
    folder.mkdir(parents=True, exist_ok=True)
    java = folder / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\necho 'OpenJDK Runtime Environment' >&2\n")
    java.chmod(0o755)
    return java


def test_a_release_from_the_mirror_lands_in_the_cache_and_jars_finds_it(mirror, no_maven):
    folder = kafka_dist.install(quiet=True)
    assert folder == no_maven / "flashsale" / f"kafka-{kafka_dist.KAFKA_VERSION}" / "libs"
    assert sorted(path.name for path in folder.iterdir()) == sorted(JARS)
    assert kafka_dist.jars() == folder
    assert kafka_dist.version(folder) == kafka_dist.KAFKA_VERSION
    assert mirror.requests == [f"{RELEASE}.tgz.sha512", f"{RELEASE}.tgz"]


def test_entries_that_climb_out_of_libs_or_link_elsewhere_are_not_extracted(mirror, tmp_path):
    folder = kafka_dist.install(quiet=True)
    assert list(tmp_path.rglob("evil*")) == []
    assert not (folder / "link.jar").exists() and not (folder / "link.jar").is_symlink()
    assert sorted(path.name for path in folder.parent.iterdir()) == ["libs"]  # no tarball, no half-done folder


def test_a_second_install_downloads_nothing(mirror):
    first = kafka_dist.install(quiet=True)
    asked = len(mirror.requests)
    assert kafka_dist.install(quiet=True) == first
    assert len(mirror.requests) == asked == 2


def test_a_release_with_a_wrong_checksum_is_refused_and_deleted(mirror, no_maven):
    (mirror.folder / f"{RELEASE}.tgz.sha512").write_text(gpg_print_md(f"{RELEASE}.tgz", b"another tarball"))
    with pytest.raises(StackError, match="does not match its published SHA-512, so it was deleted") as refused:
        kafka_dist.install(quiet=True)
    assert "\n" not in str(refused.value)
    assert [path for path in no_maven.rglob("*") if not path.is_dir()] == []
    with pytest.raises(StackError, match="run `flashsale kafka install`"):
        kafka_dist.jars()


def test_a_mirror_without_the_release_is_one_sentence_naming_the_mirror_setting(mirror, no_maven):
    (mirror.folder / f"{RELEASE}.tgz.sha512").unlink()
    with pytest.raises(StackError, match="FLASHSALE_KAFKA_MIRROR") as refused:
        kafka_dist.install(quiet=True)
    assert "404" in str(refused.value) and "\n" not in str(refused.value)
    assert [path for path in no_maven.rglob("*") if not path.is_dir()] == []


def test_a_cache_that_cannot_be_written_is_one_sentence_naming_xdg_cache_home(mirror, no_maven):
    no_maven.write_text("a file where the cache folder should be")
    with pytest.raises(StackError, match="could not be written .* set XDG_CACHE_HOME") as refused:
        kafka_dist.install(quiet=True)
    assert "\n" not in str(refused.value) and mirror.requests == []


def test_the_published_checksum_reads_in_gpg_and_in_sha512sum_format():
    digest = hashlib.sha512(b"kafka").hexdigest()
    assert kafka_dist.sha512_of(gpg_print_md("kafka.tgz", b"kafka")) == digest
    assert kafka_dist.sha512_of(f"{digest}  kafka.tgz\n") == digest
    with pytest.raises(StackError, match="unreadable"):
        kafka_dist.sha512_of("<html>Not Found</html>")


def test_kafka_home_may_be_a_release_folder(tmp_path, no_maven, monkeypatch):
    libs = tmp_path / RELEASE / "libs"
    libs.mkdir(parents=True)
    (libs / JARS[0]).write_bytes(b"jar")
    monkeypatch.setenv("FLASHSALE_KAFKA_HOME", str(tmp_path / RELEASE))
    assert kafka_dist.install(quiet=True) == libs == kafka_dist.jars()
    assert not no_maven.exists()  # nothing was installed


def test_kafka_home_may_be_a_folder_of_jars(tmp_path, no_maven, monkeypatch):
    (tmp_path / "jars").mkdir()
    (tmp_path / "jars" / JARS[0]).write_bytes(b"jar")
    monkeypatch.setenv("FLASHSALE_KAFKA_HOME", str(tmp_path / "jars"))
    assert kafka_dist.jars() == tmp_path / "jars" == kafka_dist.install(quiet=True)


def test_a_kafka_home_without_kafka_jars_is_one_sentence_naming_the_fix(tmp_path, no_maven, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("FLASHSALE_KAFKA_HOME", str(tmp_path / "empty"))
    for call in (kafka_dist.jars, kafka_dist.install):
        with pytest.raises(StackError, match="holds no Kafka jars.*`flashsale kafka install`") as refused:
            call()
        assert "\n" not in str(refused.value)


def test_without_an_install_jars_says_how_to_install(no_maven):
    with pytest.raises(StackError) as refused:
        kafka_dist.jars()
    assert str(refused.value) == kafka_dist.NOT_INSTALLED


@pytest.mark.parametrize("line, major", [('openjdk version "11.0.2" 2019-01-15', 11),
                                         ('java version "1.8.0_392"', 8)])
def test_a_java_older_than_17_is_refused_naming_java_17(tmp_path, no_maven, monkeypatch, line, major):
    monkeypatch.setenv("PATH", str(fake_java(tmp_path / "old-bin", line).parent))
    with pytest.raises(StackError, match=f"is Java {major}, and Apache Kafka .* needs Java 17 or newer"):
        kafka_dist.java()


@pytest.mark.parametrize("line", ['openjdk version "17.0.15" 2025-04-15', 'openjdk version "21" 2023-09-19',
                                  'openjdk version "25-ea" 2025-09-16'])
def test_a_java_17_or_newer_is_accepted(tmp_path, no_maven, monkeypatch, line):
    java = fake_java(tmp_path / "bin", line)
    monkeypatch.setenv("PATH", str(java.parent))
    assert kafka_dist.java() == str(java)


def test_no_java_at_all_is_one_sentence_naming_java_17(no_maven):
    with pytest.raises(StackError, match="Java was not found.*Java 17 or newer") as refused:
        kafka_dist.java()
    assert "\n" not in str(refused.value)


def test_java_home_comes_before_the_path(tmp_path, no_maven, monkeypatch):
    monkeypatch.setenv("PATH", str(fake_java(tmp_path / "old-bin", 'openjdk version "11.0.2"').parent))
    java = fake_java(tmp_path / "jdk-21" / "bin", 'openjdk version "21.0.5" 2024-10-15')
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk-21"))
    assert kafka_dist.java() == str(java)


def test_command_is_java_with_heap_jvm_options_and_the_jars_on_the_classpath(tmp_path, no_maven, monkeypatch):
    java = fake_java(tmp_path / "bin", 'openjdk version "17.0.15"')
    monkeypatch.setenv("PATH", str(java.parent))
    (tmp_path / "jars").mkdir()
    (tmp_path / "jars" / JARS[0]).write_bytes(b"jar")
    monkeypatch.setenv("FLASHSALE_KAFKA_HOME", str(tmp_path / "jars"))
    argv = kafka_dist.command("kafka.Kafka", "server.properties", heap_mb=256, jvm=("-Dlog4j2.level=WARN",))
    assert argv == [str(java), "-Xmx256m", "-Xms256m", "-Dlog4j2.level=WARN", "-cp", f"{tmp_path / 'jars'}/*",
                    "kafka.Kafka", "server.properties"]


def flashsale_kafka_install(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flashsale.cli", "kafka", "install"], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_the_command_with_a_bad_kafka_home_exits_1_with_one_error_line(tmp_path):
    (tmp_path / "empty").mkdir()
    done = flashsale_kafka_install({"FLASHSALE_KAFKA_HOME": str(tmp_path / "empty")})
    assert done.returncode == 1
    assert done.stderr.startswith("error: FLASHSALE_KAFKA_HOME=") and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stdout + done.stderr


def test_the_command_says_which_kafka_and_where(tmp_path):
    libs = tmp_path / RELEASE / "libs"
    libs.mkdir(parents=True)
    (libs / JARS[0]).write_bytes(b"jar")
    done = flashsale_kafka_install({"FLASHSALE_KAFKA_HOME": str(tmp_path / RELEASE)})
    assert done.returncode == 0, done.stderr
    assert f"Apache Kafka {kafka_dist.KAFKA_VERSION}: {libs}" in done.stdout


def test_an_install_from_before_the_tools_gets_them_and_keeps_every_jar_it_had(mirror, no_maven):
    old = no_maven / "flashsale" / f"kafka-{kafka_dist.KAFKA_VERSION}" / "libs"
    old.mkdir(parents=True)
    (old / JARS[0]).write_bytes(b"the jar a running broker has open")
    folder = kafka_dist.install(quiet=True)
    assert folder == old and (old / JARS[0]).read_bytes() == b"the jar a running broker has open"
    assert kafka_dist.has_tools(folder) and sorted(path.name for path in folder.iterdir()) == sorted(JARS)


def bundle_of(folder: Path, version: str = kafka_dist.KAFKA_VERSION) -> Path:
    (folder / "kafka").mkdir(parents=True)
    for jar in (f"kafka_2.13-{version}.jar", f"kafka-tools-{version}.jar", "slf4j-api-1.7.36.jar"):
        (folder / "kafka" / jar).write_bytes(b"PK jar")
    return folder


def test_an_install_from_a_bundle_copies_its_jars_and_asks_no_network(tmp_path, no_maven):
    folder = kafka_dist.install(quiet=True, source=bundle_of(tmp_path / "usb"))
    assert kafka_dist.has_tools(folder) and len(list(folder.iterdir())) == 3 and kafka_dist.jars() == folder


def test_a_bundle_of_another_kafka_version_or_without_jars_is_refused(tmp_path, no_maven):
    with pytest.raises(StackError, match="holds Apache Kafka 3.9.0, and this kit runs"):
        kafka_dist.install(quiet=True, source=bundle_of(tmp_path / "old", "3.9.0"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(StackError, match="holds no Kafka jars"):
        kafka_dist.install(quiet=True, source=tmp_path / "empty")
    assert not kafka_dist.cache().exists()

"""docker-compose.yml and flashsale.stack.docker agree, checked without Docker.

A fake `docker` (a shell script on PATH) stands in for the real client, so
these tests start no container and no server.
"""
import stat
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from flashsale.settings import Settings
from flashsale.stack import apache_kafka, docker, kafka_dist
from flashsale.stack.processes import StackError


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(docker.compose_file(Settings()).read_text())["services"]


@pytest.fixture(scope="module")
def kafka_env(services) -> dict:
    return {key: str(value) for key, value in services["kafka"]["environment"].items()}


def published(service: dict) -> dict[int, str]:
    """{container port: "host:port"} for a service's `ports` entries "host:hostport:containerport"."""
    ports = {}
    for entry in service.get("ports", []):
        host, host_port, container_port = entry.split(":")
        ports[int(container_port)] = f"{host}:{host_port}"
    return ports


def listeners(value: str) -> dict[str, str]:
    """"NAME://host:port,..." as {NAME: "host:port"}."""
    return dict(item.split("://") for item in value.split(","))


def env_name(prop: str) -> str:
    """The apache/kafka image's variable for a broker property: `.` is `_`, `-` is `__`, `_` is `___`."""
    return "KAFKA_" + prop.replace("_", "___").replace("-", "__").replace(".", "_").upper()


def fake_docker(tmp_path, monkeypatch, script: str) -> None:
    """Put a `docker` shell script first (and alone) on PATH."""
    (tmp_path / "docker").write_text(f"#!/bin/sh\n{script}\n")
    (tmp_path / "docker").chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", str(tmp_path))


# --- the compose file ------------------------------------------------------------------------


def test_every_service_has_a_healthcheck(services):
    assert set(services) == {"kafka", "postgres", "redis", "kafka-ui"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_every_port_is_published_on_loopback_only(services):
    for name, service in services.items():
        for entry in service.get("ports", []):
            assert entry.startswith("127.0.0.1:"), f"{name} publishes {entry} beyond loopback"


def test_kafka_runs_kraft_as_a_single_combined_node(kafka_env, services):
    assert set(kafka_env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id, controller = kafka_env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@")
    assert node_id == kafka_env["KAFKA_NODE_ID"]
    assert controller.split(":")[0] == services["kafka"]["hostname"]
    controller_listener = kafka_env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert listeners(kafka_env["KAFKA_LISTENERS"])[controller_listener].endswith(controller.split(":")[1])
    assert kafka_env["CLUSTER_ID"]
    assert controller.split(":")[1] not in {p.split(":")[1] for p in published(services["kafka"]).values()}


def test_kafka_internal_topics_fit_one_broker_and_groups_form_at_once(kafka_env):
    assert kafka_env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert kafka_env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert kafka_env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert kafka_env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # the kit creates its topics


def test_kafka_image_is_the_version_the_embedded_broker_runs(services):
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_dist.KAFKA_VERSION}"


def test_kafka_has_every_setting_of_the_embedded_broker(kafka_env):
    expected = {**apache_kafka.ONE_NODE, **apache_kafka.LAB_GROUPS, **apache_kafka.TOPICS}
    assert "group.consumer.session.timeout.ms" in expected and "offsets.topic.num.partitions" in expected
    assert {env_name(prop): kafka_env.get(env_name(prop)) for prop in expected} == \
           {env_name(prop): str(value) for prop, value in expected.items()}


def test_kafka_runs_the_same_kraft_roles_and_listener_protocols_as_the_embedded_broker(kafka_env):
    embedded = apache_kafka.server_properties(Path("data"), broker=9092, controller=9093)
    assert kafka_env["KAFKA_PROCESS_ROLES"] == embedded["process.roles"] == "broker,controller"
    assert kafka_env["KAFKA_CONTROLLER_LISTENER_NAMES"] == embedded["controller.listener.names"] == "CONTROLLER"
    protocols = dict(item.split(":") for item in kafka_env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    embedded_protocols = dict(item.split(":") for item in embedded["listener.security.protocol.map"].split(","))
    # The host's programs reach a PLAINTEXT listener on 127.0.0.1, as they reach the embedded broker's.
    host = next(name for name, address in listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"]).items()
                if address.startswith("127.0.0.1:"))
    assert protocols[host] == embedded_protocols["PLAINTEXT"] == "PLAINTEXT"
    assert listeners(embedded["advertised.listeners"])["PLAINTEXT"].startswith("127.0.0.1:")
    assert protocols["CONTROLLER"] == embedded_protocols["CONTROLLER"]
    assert "CONTROLLER" in listeners(kafka_env["KAFKA_LISTENERS"])
    assert "CONTROLLER" not in listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])


def test_kafka_ui_uses_the_container_listener(services, kafka_env):
    advertised = listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"]).values()
    ui = services["kafka-ui"]
    assert ui["environment"]["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] in advertised
    assert ui["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert f"http://{published(ui)[8080]}" == docker.KAFKA_UI_URL


def test_redis_keeps_an_append_only_file(services):
    command = services["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in services["redis"]["volumes"])


def test_postgres_volume_follows_the_18_layout(services):
    assert services["postgres"]["image"].startswith("postgres:18")
    assert "postgres-data:/var/lib/postgresql" in services["postgres"]["volumes"]


# --- the addresses docker.up returns -------------------------------------------------------------


@pytest.fixture
def addresses(tmp_path, monkeypatch) -> dict:
    """docker.up against a fake docker that succeeds; its arguments go to calls.log."""
    log = tmp_path / "calls.log"
    fake_docker(tmp_path, monkeypatch, f'echo "$@" >> {log}')
    result = docker.up(Settings(home=tmp_path / "home"), timeout=42)
    calls = log.read_text().splitlines()
    compose_up = f"compose -f {docker.compose_file(Settings())} up -d --wait --wait-timeout 42"
    assert calls[-1] == compose_up
    return result


def test_up_returns_the_kafka_address_the_broker_advertises_and_publishes(addresses, services, kafka_env):
    advertised = listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    host_listener = next(name for name, address in advertised.items() if address == addresses["kafka"])
    container_port = int(listeners(kafka_env["KAFKA_LISTENERS"])[host_listener].rsplit(":", 1)[1])
    assert published(services["kafka"])[container_port] == addresses["kafka"]


def test_up_returns_the_published_postgres_with_working_credentials(addresses, services):
    url, postgres = urlsplit(addresses["postgres"]), services["postgres"]
    assert published(postgres)[5432] == f"{url.hostname}:{url.port}"
    assert url.username == postgres["environment"].get("POSTGRES_USER", "postgres")
    assert url.path.lstrip("/") == postgres["environment"].get("POSTGRES_DB", url.username)
    if url.password is None:
        assert postgres["environment"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    else:
        assert url.password == postgres["environment"]["POSTGRES_PASSWORD"]


def test_up_returns_the_published_redis(addresses, services):
    url = urlsplit(addresses["redis"])
    assert published(services["redis"])[6379] == f"{url.hostname}:{url.port}"


# --- clear errors where there is no Docker ---------------------------------------------------------


def test_up_without_a_docker_client_points_to_the_embedded_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no docker
    with pytest.raises(StackError, match=r"Docker is not available here: use the default embedded mode"):
        docker.up(Settings(home=tmp_path / "home"), timeout=5)


def test_up_without_compose_says_so(tmp_path, monkeypatch):
    fake_docker(tmp_path, monkeypatch, "exit 1")
    with pytest.raises(StackError, match=r"Docker Compose v2 .* is not installed.*embedded mode"):
        docker.up(Settings(home=tmp_path / "home"), timeout=5)


def test_up_with_the_engine_stopped_says_so(tmp_path, monkeypatch):
    fake_docker(tmp_path, monkeypatch, '[ "$1" = compose ] && exit 0\n'
                                       'echo "Cannot connect to the Docker daemon" >&2; exit 1')
    with pytest.raises(StackError, match=r"engine is not running(.|\n)*Cannot connect to the Docker daemon"):
        docker.up(Settings(home=tmp_path / "home"), timeout=5)


def test_a_failing_compose_up_shows_its_error(tmp_path, monkeypatch):
    fake_docker(tmp_path, monkeypatch, '[ "$2" = -f ] && { echo "port is already allocated" >&2; exit 1; }\nexit 0')
    with pytest.raises(StackError, match=r"docker compose up(.|\n)*port is already allocated"):
        docker.up(Settings(home=tmp_path / "home"), timeout=5)


def test_down_removes_the_containers(tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    fake_docker(tmp_path, monkeypatch, f'echo "$@" >> {log}')
    docker.down(Settings(home=tmp_path / "home"))
    assert log.read_text().splitlines()[-1] == f"compose -f {docker.compose_file(Settings())} down"

"""The docker mode: Kafka, PostgreSQL, Redis and Kafka UI from `docker-compose.yml`.

`up` hands the work to `docker compose up --wait`, which returns once every
container's healthcheck passes; the services then run on the host, as in the
embedded mode, against the ports the compose file publishes on 127.0.0.1.
"""
import shutil
import subprocess
from pathlib import Path

import flashsale
from flashsale.settings import Settings
from flashsale.stack.processes import StackError

# What docker-compose.yml publishes (tests/unit/test_docker_compose.py keeps the two in step).
ADDRESSES = {
    "kafka": "127.0.0.1:9092",
    "postgres": "postgresql://postgres@127.0.0.1:5432/postgres",
    "redis": "redis://127.0.0.1:6379/0",
}
KAFKA_UI_URL = "http://127.0.0.1:8080"

NO_DOCKER = "Docker is not available here: use the default embedded mode (`flashsale up`)."


def compose_file(settings: Settings) -> Path:
    """The repository's compose file (next to the package), else one next to the stack's home."""
    candidates = [Path(flashsale.__file__).resolve().parents[1] / "docker-compose.yml",
                  settings.home.resolve().parent / "docker-compose.yml"]
    for path in candidates:
        if path.is_file():
            return path
    raise StackError(f"docker-compose.yml not found (looked at {', '.join(map(str, candidates))}).")


def up(settings: Settings, timeout: float) -> dict:
    """Start the containers (idempotent), wait until all are healthy, return their addresses."""
    _compose(settings, "up", "-d", "--wait", "--wait-timeout", str(max(1, round(timeout))))
    return dict(ADDRESSES)


def down(settings: Settings) -> None:
    """Remove the containers; the named volumes, and so the data, stay."""
    _compose(settings, "down")


def _compose(settings: Settings, *args: str) -> None:
    docker = shutil.which("docker")
    if docker is None:
        raise StackError(NO_DOCKER)
    if _run([docker, "compose", "version"]).returncode:
        raise StackError("Docker Compose v2 (`docker compose`) is not installed. " + NO_DOCKER)
    info = _run([docker, "info", "--format", "{{.ServerVersion}}"])
    if info.returncode:
        raise StackError("The Docker engine is not running (start Docker Desktop or the docker service). "
                         f"{NO_DOCKER}\n{info.stderr.strip()}")
    file = compose_file(settings)
    done = subprocess.run([docker, "compose", "-f", str(file), *args], capture_output=True, text=True)
    if done.returncode:
        raise StackError(f"`docker compose {' '.join(args)}` failed; see `docker compose -f {file} logs`.\n"
                         f"{done.stderr.strip()[-3000:]}")


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return subprocess.CompletedProcess(argv, 1, "", str(error))

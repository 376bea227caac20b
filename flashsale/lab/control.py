"""Drive the real stack from a notebook cell: the CLI's `Stack`, plus what a lesson needs.

Each notebook gets a home of its own (`<FLASHSALE_HOME>/<name>`, so
`notebooks/.flashsale/03-event-driven` when run from `notebooks/`) and free
ports, so notebooks never clash with each other or with `flashsale up`. The
stack's own methods do the rest, exactly as `flashsale kill|restart|reset` do:
`stack.kill("orders")`, `stack.restart("orders")`, `stack.scale("inventory", 3)`.
"""
import asyncio
import atexit
import functools
import json
import signal

import pandas as pd

from flashsale.adapters import redis as redis_adapter
from flashsale.settings import Settings
from flashsale.stack import kafka_dist
from flashsale.stack.control import INFRA, SERVICES, Stack
from flashsale.stack.processes import StackError, alive, free_port
from flashsale.stack.table import State


class LabStack(Stack):
    """The CLI's Stack. It also notes every pid it starts in `pids.log`: a test proves none outlives the notebook."""

    def noted(self, state: State) -> None:
        with open(self.home / "pids.log", "a") as ledger:
            ledger.writelines(f"{info.pid}\n" for info in state.processes.values())


def start(name: str, services=SERVICES, stock: int = 100, timeout: float = 120, **settings) -> LabStack:
    """Start the servers and `services` for notebook `name`, with a new sale of `stock` phones.

    `settings` change this stack's Settings (`price_cents=99_900`); every process of it gets them. Each server
    gets `timeout` seconds to be healthy (three Kafka nodes took 25 s here, on a quiet machine)."""
    home = Settings().home.resolve() / name
    stack = LabStack(Settings(home=home, **_ports(home), **settings))
    stack.up(stock=stock, services=tuple(services), timeout=timeout)
    atexit.register(stack.down)  # restarting or closing the kernel stops this notebook's stack too
    return stack


def kafka_if_installed() -> str:
    """The broker for a lesson about Apache Kafka itself (05, 08): "kafka" when it is installed (its jars and a Java
    17), else "tansu". A broker chosen with FLASHSALE_BROKER (or in .env) wins: CI's tansu pass runs them on tansu."""
    chosen = Settings()
    if "broker" in chosen.model_fields_set:
        return chosen.broker
    try:
        kafka_dist.jars(), kafka_dist.java()
    except StackError:
        return "tansu"
    return "kafka"


def _ports(home) -> dict:
    """Free ports for the HTTP services; the same ones again while this home's stack still runs."""
    saved = home / "ports.json"
    if saved.exists() and any(alive(p.pid) for p in Stack(Settings(home=home)).processes().values()):
        return json.loads(saved.read_text())
    ports = {"gateway_port": free_port(), "shop_port": free_port(), "psp_port": free_port()}
    home.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(ports))
    return ports


def stop(stack: Stack) -> str:
    """Stop every process of this stack (services first, then the servers)."""
    stack.down()
    return f"stopped: nothing of {stack.home.name} is running"


def stop_service(stack: Stack, name: str) -> list[int]:
    """A polite stop (SIGTERM): the service finishes its batch, commits and exits."""
    return stack.kill(name, signal.SIGTERM)


def status(stack: Stack) -> pd.DataFrame:
    """One row per component, as `flashsale status` prints it."""
    state = stack.status().as_dict()
    rows = [{"component": name, "kind": "server" if name in INFRA else "service", **info}
            for group in ("infra", "services") for name, info in state[group].items()]
    return pd.DataFrame(rows).astype({"pid": "Int64"}).set_index("component")


def background(fn, *args, **kwargs) -> asyncio.Future:
    """Run `fn` in a worker thread; `await` its result. The kernel stays free to redraw the dashboard meanwhile."""
    return asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))


def redis(stack: Stack):
    """A client of this stack's Redis, where the stock counter lives."""
    return redis_adapter.connect(stack.wired().redis_url)

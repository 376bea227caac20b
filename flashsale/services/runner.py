"""How a service process starts: logging, the garbage collector, its settings, then its loop or its server.

The one place a service process wires itself: a consumer service hands over its batch handler, an HTTP service
its app factory; both get their settings here, from the environment the launcher gave them.
"""
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

from flashsale.adapters import kafka
from flashsale.adapters.dead_letters import Handler
from flashsale.brokers import choose
from flashsale.settings import Settings

log = logging.getLogger(__name__)


def configure_logging(service: str) -> None:
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per charge would bury what matters


def tune_gc() -> None:
    """Collect garbage less often: a busy service makes many short-lived objects and few cycles.

    With the default (a collection every 700 allocations) the gateway spent ~7% of its time in the collector
    under load (py-spy --native); with this it accepts ~12% more orders a second (wrk, 1,000 connections).
    What exists at start (modules, settings) is frozen out of every collection.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def run_consumer_service(name: str, topics: list[str], handle: Callable[[Settings], Handler],
                         timer: Callable[[Settings], kafka.Timer] | None = None) -> None:
    """Run consumer service `name` until SIGTERM: its group is its name, `handle(settings)` makes its batch handler
    (with the connections it needs), `timer(settings)` what its loop does between batches, and the broker's profile
    says how it takes its partitions."""
    configure_logging(name)
    tune_gc()
    settings = Settings()
    profile = choose(settings)
    log.info("consuming %s as %s instance %d (%s)", topics, name, settings.instance,
             "group member" if profile.groups else f"owns p % {settings.instances} == {settings.instance}")
    serve(lambda: kafka.kafka_loop(settings, profile, name), topics, handle(settings),
          timer(settings) if timer else None)


def serve(build: Callable[[], kafka.ConsumerLoop[Any]], topics: list[str], handle: Handler,
          timer: kafka.Timer | None = None, rejoins: int = 5, within_s: float = 60, pause_s: float = 1.0) -> None:
    """Run a loop that `build` makes until it stops cleanly (SIGTERM). After a fatal consumer error, build another:
    its consumer joins as a new member under the same static id, which the coordinator gives the partitions, and
    resumes from the group's commits (the handlers are idempotent). More than `rejoins` in `within_s` is not a
    fence but a fault that rejoining cannot mend: the error is raised, the process stops, `status` shows it down."""
    recent: list[float] = []
    while True:
        try:
            build().run(topics, handle, timer)
            return
        except kafka.FatalConsumerError as error:
            now = time.monotonic()
            recent = [t for t in recent if now - t < within_s] + [now]
            if len(recent) > rejoins:
                raise
            log.warning("%s; rejoining as a new member (%d in %g s)", error, len(recent), within_s)
            time.sleep(pause_s)


def run_http_service(create_app: Callable[[Settings], Any], settings: Settings, port: int) -> None:
    """One server configuration for every HTTP process, so benchmarks compare like with like: uvicorn calls the
    app factory (`factory=True`), so the app is made in the process that serves it."""
    import uvicorn

    tune_gc()
    uvicorn.run(lambda: create_app(settings), factory=True, host="0.0.0.0" if settings.public else settings.host,
                port=port, loop="uvloop", http="httptools", log_level="warning", access_log=False, backlog=4096,
                timeout_keep_alive=30)

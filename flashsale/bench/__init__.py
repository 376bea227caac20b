"""`flashsale bench`: every system measured side by side, in one run, on one machine.

It starts a stack of its own (payment delay 0, so the shops are as fast as
they can be) and measures:
- at saturation, with `connections` concurrent connections each: the bare HTTP
  ceiling (a no-op endpoint), the event-driven accept rate, the locked shop,
  the naive shop; and the settle rate;
- at a fixed offered load (`rate`, 1,000 orders/s by default, open loop):
  POST -> final WebSocket update, and WebSocket fan-out to `browsers` browsers;
- CPU per order: every event-path process's utime+stime from /proc over the
  orders of the fixed-load run (harness/cpu.py; the load generator is not in
  any of their process trees), beside the no-op server's CPU per request;
- a 1,000-buyer race for oversold and lost;
- the stack idle once the race is over (a stack that has worked, a JVM that has compiled; measured after
  `flashsale up`, Apache Kafka's compiler threads still took 2.5-3% of a core two minutes later): its CPU
  (% of one core) and its unique memory (harness/footprint.py); then one order, POST to its final state on the
  WebSocket: how quickly the stack wakes (`first_order_after_idle_ms`; `--idle 60` for an idle minute);
- that the saturation run's buyers were distinct: its sale allows one unit a buyer, so a userId sent twice
  shows as an order cancelled for the per-user limit (`per_user_limit_cancelled`, 0).

The latency phases each start from a fresh stack. tansu's memory storage gets
slower with every record batch it holds (measured: a consumer's delivery
latency went from 4 ms to 25 ms once a partition held 20,000 one-message
batches), so a phase run after the saturation run would measure its leftovers.
Each then warms up before anything is measured: a just-started JVM compiles
Kafka's code for its first minute or so, and that compiling is a cost of
starting, not of an order (measured: see WARM_UP_RATE). The end-to-end phase
warms up with orders (`warm_up`); the fan-out phase with its own load: about
3.5 times the warm-up's messages a second on notification.events (2,100
against ~600), read from the end by a consumer that commits nothing. Measured
on one stack, the JVM's compiler threads took 3.1 s of the broker's 4.7 s of
CPU in a fan-out run after 30 s of orders, and 0.6 s of 2.2 s in the fourth.
"""
import asyncio
import statistics
import sys
import time
from dataclasses import replace

from tqdm.auto import tqdm

from flashsale.adapters import kafka
from flashsale.bench.e2e import measure
from flashsale.bench.fanout import measure_fanout
from flashsale.bench.result import BenchResult, worst
from flashsale.bench.stats import p99
from flashsale.bench.wrk import wrk
from flashsale.brokers import choose
from flashsale.harness.checks import invariants, refused_for_limit, settle
from flashsale.harness.cpu import Meter, per_unit_ms
from flashsale.harness.footprint import idle_footprint
from flashsale.harness.load import run_buyers
from flashsale.settings import Settings
from flashsale.stack.control import Stack
from flashsale.stack.processes import StackError, free_port

__all__ = ["BenchResult", "run_bench", "worst"]

UNLIMITED = 10**9
# Orders/s of the warm-up: one every code path sees, that both brokers settle as they come (never a backlog).
# Measured on Apache Kafka 4.1.1 at 300 orders/s from a fresh start, the broker's CPU per order over 8 rounds
# of 5 s: 4.37, 3.27, 2.36, 2.66, 1.74, 1.78, 1.54, 1.41 ms, of which the JIT's compiler threads took
# 4.28 s in the first round and 0.59 s in the last.
WARM_UP_RATE = 200
# Seconds the stack settles after the race before its idle CPU is measured: the last commits, sockets closing.
IDLE_SETTLE_S = 5


def run_bench(base: Settings, connections: int = 1000, seconds: int = 5, browsers: int = 1000, rate: int = 1000,
              warm_up_s: int = 30, idle_s: float = 10) -> BenchResult:
    settings = base.model_copy(update={"home": base.home.resolve() / "bench", "gateway_port": free_port(),
                                       "shop_port": free_port(), "psp_port": free_port(), "payment_delay_ms": 0,
                                       "rate_limit_per_s": 0})
    stack = Stack(settings)
    fanout_warm_up_s = fanout_warm_up(settings, warm_up_s)
    steps = tqdm(total=9, desc="bench", unit="step", file=sys.stderr)
    try:
        stack.up(stock=UNLIMITED)
        noop = stack.launch("noop")  # the ceiling: the gateway's server stack with nothing behind it
        steps.update()
        product = settings.product_id
        noop_cpu = Meter({noop.pid: "noop"}).start()
        ceiling = wrk(noop.url, "/noop", product, connections, seconds)
        cpu_per_noop = per_unit_ms(noop_cpu.stop(), ceiling.requests)["total"]
        steps.update()
        saturated = stack.reset(UNLIMITED, 1)  # one a buyer: a buyer sent twice is refused, and counted
        sale_started = time.monotonic()
        events = wrk(settings.gateway_url, "/api/orders", product, connections, seconds)
        settled_all = wait_settled(stack, events.requests - events.errors)
        settle_rate = events.requests / (time.monotonic() - sale_started) if settled_all else 0.0
        refused = refused_for_limit(stack.wired(), saturated.saleId)
        steps.update()
        locked = wrk(settings.shop_url, "/locked/orders", product, connections, seconds)
        steps.update()
        naive = wrk(settings.shop_url, "/naive/orders", product, connections, seconds)
        steps.update()
        fresh(stack, warm_up_s)
        meter = Meter(event_path(stack)).start()
        e2e = asyncio.run(measure(settings.gateway_url, product, rate, seconds))
        e2e_settled = wait_settled(stack, e2e.accepted)
        cpu_per_order = per_unit_ms(meter.stop(), e2e.accepted)
        steps.update()
        fresh(stack, 0)  # the fan-out warms up with its own load (fanout_warm_up), not orders
        wired = stack.wired()
        fanout = measure_fanout(settings.gateway_url, wired.kafka_bootstrap_servers, product, browsers, rate, seconds,
                                warm_up_s=fanout_warm_up_s,
                                bell=kafka.Bell.at(wired.redis_url) if choose(settings).dozes else None)
        steps.update()
        sale = stack.reset(100, 1)
        race = run_buyers("gateway", settings.gateway_url, 1000, product, progress=False)
        accepted = race.order_ids
        settle(stack.wired(), accepted, timeout=120)
        state = invariants(stack.wired(), sale.saleId, accepted)
        steps.update()
        stack.reset(10, 1)  # a phone left for the order after the idle time, so it goes the whole way, payment too
        time.sleep(IDLE_SETTLE_S)
        idle = idle_footprint(stack, idle_s)
        woken = asyncio.run(measure(settings.gateway_url, product, rate=1, seconds=1, warm_up_s=0))
        steps.update()
    finally:
        steps.close()
        stack.down()
    systems = {"ceiling": ceiling, "event_driven": events, "locked": locked, "naive": naive}
    p99_e2e = round(p99(e2e.latencies_ms), 1) if e2e.latencies_ms else None
    result = BenchResult(
        settings.broker, connections, seconds, {name: run.requests_per_s for name, run in systems.items()},
        {name: run.p50_ms for name, run in systems.items()}, {name: run.p99_ms for name, run in systems.items()},
        {name: run.errors for name, run in systems.items()}, round(settle_rate, 1), rate,
        round(statistics.median(e2e.latencies_ms), 1) if e2e.latencies_ms else None, p99_e2e, e2e_settled,
        cpu_per_order, cpu_per_noop, warm_up_s, fanout_warm_up_s, fanout, state.oversold, state.lost,
        goal_p99_e2e_ms=p99_e2e, goal_p99_fanout_ms=0, cpu_ms_per_order=cpu_per_order["total"],
        idle_cpu_pct=idle.idle_cpu_pct, idle_cpu_pct_by_component=idle.idle_cpu_pct_by_component,
        stack_uss_mib=idle.stack_uss_mib, per_user_limit_cancelled=refused,
        first_order_after_idle_ms=round(woken.latencies_ms[0], 1) if woken.latencies_ms else None,
        broker_mode=choose(settings).name)
    return replace(result, goal_p99_fanout_ms=result.p99_fanout_ms, runs=(result.figures(),))


def event_path(stack: Stack) -> dict[int, str]:
    """The processes an order goes through, pid -> component: every server and service but the shop's (and the
    no-op server's)."""
    return {process.pid: process.service or name for name, process in stack.processes().items()
            if process.service not in ("shop", "noop")}


def fanout_warm_up(settings: Settings, warm_up_s: int) -> float:
    """Seconds of the fan-out's own load before its clock starts: twice `warm_up_s` for a broker that compiles.

    Measured with Apache Kafka 4.1.1, a fresh stack each, in three alternating pairs: warmed up by 30 s of orders
    and 1 s of the fan-out (before), the fan-out's p99 (order or stock updates, the worse) was 348, 487 and 410 ms,
    p50 106, 129 and 52 ms; by 60 s of the fan-out itself, p99 277, 381 and 125 ms, p50 78, 36 and 32 ms. tansu
    compiles nothing, and its memory storage slows down with every batch it holds: after 30 s of this load its
    order updates had p99 3.9-5.1 s and no stock update came through; after 1 s, p99 188 and 738 ms.
    """
    # at least 1 s, as before the change: the browsers' first sends and new connections, also with --warm-up 0
    return max(2.0 * warm_up_s, 1.0) if choose(settings).compiles else 1.0


def fresh(stack: Stack, warm_up_s: int) -> None:
    """A new stack in the same place (an empty broker, database and Redis, the same ports), warmed up."""
    stack.wipe()
    stack.up(stock=UNLIMITED)
    stack.reset(UNLIMITED, UNLIMITED)
    warm_up(stack, warm_up_s)
    stack.reset(UNLIMITED, UNLIMITED)  # a new sale: what is counted next is the measured run's orders alone


def warm_up(stack: Stack, seconds: int) -> None:
    """Orders at WARM_UP_RATE for `seconds`, until every one is settled: what is measured next is the steady state."""
    if seconds:
        warmed = asyncio.run(measure(stack.settings.gateway_url, stack.settings.product_id, WARM_UP_RATE, seconds,
                                     warm_up_s=0))
        if not wait_settled(stack, warmed.accepted):
            raise StackError(f"the warm-up's {warmed.accepted} orders did not all settle")


def wait_settled(stack: Stack, accepted: int, timeout: float = 300) -> bool:
    """Until every accepted order of the current sale is CONFIRMED or CANCELLED."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sale = stack.sale()
        if sale and sale.settled >= accepted:
            return True
        time.sleep(0.2)
    return False

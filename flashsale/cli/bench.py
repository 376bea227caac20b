"""`flashsale bench`: every system measured side by side, in one run (flashsale/bench/ says how)."""
import json
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.table import Table

from flashsale.cli.common import console, fail, invalid
from flashsale.settings import Settings
from flashsale.stack.processes import StackError

app = typer.Typer()


@app.command()
def bench(as_json: Path = typer.Option(Path("flashsale-bench.json"), "--json", help="Where to write the figures."),
          connections: int = typer.Option(1000, help="Concurrent buyers (connections) per system, at saturation."),
          seconds: int = typer.Option(5, help="Seconds of load per system."),
          browsers: int = typer.Option(1000, help="WebSocket clients for the fan-out benchmark."),
          rate: int = typer.Option(1000, help="Offered orders/s for the end-to-end, fan-out and CPU runs."),
          runs: int = typer.Option(1, min=1, help="Repeat, and report each goal's worst run."),
          warm_up: int = typer.Option(30, min=0, help="Seconds of orders at a low, steady rate "
                                                      "(flashsale.bench.WARM_UP_RATE) before the end-to-end run is "
                                                      "measured, and twice as long of the fan-out's own load before "
                                                      "the fan-out on Apache Kafka (a fresh JVM compiles meanwhile)."),
          idle: float = typer.Option(10, min=1, help="Seconds the stack's idle CPU is measured over, after the race."),
          broker: str | None = typer.Option(None, help="tansu or kafka (default: the broker setting).")) -> None:
    """Benchmarks side by side: ceiling, event-driven, locked, naive; end-to-end latency, fan-out and CPU per
    order at a fixed offered load; settle rate."""
    from flashsale.bench import run_bench, worst

    try:
        chosen: dict[str, Any] = {"broker": broker} if broker else {}
        settings = Settings(**chosen)
    except ValidationError as error:
        fail(invalid(error))
    try:
        result = worst([run_bench(settings, connections, seconds, browsers, rate, warm_up, idle) for _ in range(runs)])
    except StackError as error:
        fail(error)
    table = Table("system", "accepted/s", "p50 ms", "p99 ms", "errors", title="flashsale bench")
    for system, accepted in result.accept_per_s.items():
        p50, p99 = result.p50_accept_ms[system], result.p99_accept_ms_by_system[system]
        table.add_row(system, f"{accepted:,.0f}", "no answer" if p50 is None else f"{p50:,.1f}",
                      "in the run" if p99 is None else f"{p99:,.1f}", str(result.errors[system]))
    console.print(table)
    figures = result.as_dict()
    console.print(f"event-driven vs locked: {figures['ratio_event_vs_locked']}x; vs ceiling: "
                  f"{figures['ratio_event_vs_ceiling']}; end-to-end at {rate}/s on {result.broker}: "
                  f"p99 {result.goal_p99_e2e_ms} ms (worst of {runs}); settles {result.settle_per_s}/s; "
                  f"oversold {result.oversold}, lost {result.lost}", highlight=False)
    parts = ", ".join(f"{name} {ms}" for name, ms in result.cpu_ms_per_order_by_component.items() if name != "total")
    console.print(f"CPU per order: {result.cpu_ms_per_order} ms ({parts}); the no-op server: "
                  f"{result.cpu_ms_per_noop} ms per request", highlight=False)
    idle_parts = ", ".join(f"{name} {pct}" for name, pct in result.idle_cpu_pct_by_component.items())
    console.print(f"idle stack: {result.idle_cpu_pct}% of a core ({idle_parts}); {result.stack_uss_mib} MiB unique "
                  f"memory; buyers distinct: {figures['buyers_distinct']} ({result.per_user_limit_cancelled} orders "
                  f"cancelled for the per-user limit); the first order after {idle} s idle: "
                  f"{result.first_order_after_idle_ms} ms to final (worst of {runs})", highlight=False)
    fanout = result.fanout
    console.print(f"WebSocket fan-out to {fanout['clients']:,} browsers at {fanout['orders_per_s']:,.0f} orders/s: "
                  f"order updates p50 {fanout['order_update'].get('p50_ms')} ms, p99 "
                  f"{fanout['order_update'].get('p99_ms')} ms ({fanout['order_update']['received']:,} received of "
                  f"{fanout['published']['order_update']:,}); stock updates p99 {fanout['stock_update'].get('p99_ms')} "
                  f"ms", highlight=False)
    as_json.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))

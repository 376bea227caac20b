"""The `flashsale` command: a thin shell over `stack.control.Stack` and the demo."""
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn, Optional

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from flashsale.settings import Settings
from flashsale.stack.control import INFRA, SERVICES, Stack
from flashsale.stack.processes import StackError

app = typer.Typer(help="A flash sale lab: oversell it, then fix it with events.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
console = Console(width=None if sys.stdout.isatty() else 140)  # a log file gets the whole table


def stack(public: bool = False, **overrides) -> Stack:
    """`public`: live mode, with the stack's private admin token (Settings refuse the default one in public mode)."""
    return Stack(Settings(**{k: v for k, v in overrides.items() if v is not None}), public=public)


def stack_or_fail(**overrides) -> Stack:
    try:
        return stack(**overrides)
    except ValidationError as error:
        fail(invalid(error))


def invalid(error: ValidationError) -> StackError:
    return StackError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()))


def fail(error: Exception) -> NoReturn:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(1)


@app.command()
def up(infra: Optional[str] = typer.Option(None, help="embedded | docker | external"),
       broker: Optional[str] = typer.Option(None, help="The embedded broker: tansu (the default, zero install) "
                                                        "or kafka (Apache Kafka 4.x: `flashsale kafka install`)."),
       durable: bool = typer.Option(False, help="Embedded tansu on S3 storage (SeaweedFS): survives a crash."),
       kafka_nodes: Optional[int] = typer.Option(None, help="Apache Kafka nodes: 1, or 3 (each a controller and a "
                                                            "broker; 3 replicas, min.insync.replicas 2)."),
       public: bool = typer.Option(False, help="Live mode: listen on all interfaces for an audience."),
       stock: Optional[int] = typer.Option(None, help="Start a new sale with this stock.")):
    """Start the infrastructure and every service; wait until all are healthy."""
    the_stack = stack_or_fail(infra=infra, broker=broker, durable=durable or None, public=public,
                              kafka_nodes=kafka_nodes)
    try:
        status_ = the_stack.up(stock=stock)
    except StackError as error:
        fail(error)
    print_status(status_)
    if the_stack.settings.public:
        from flashsale import live

        url = live.buyer_url(the_stack.settings.gateway_port)
        live.qr_svg(url, the_stack.home / "buyer-qr.svg")
        console.print(f"\n[bold]Buy at {url}[/bold]  (QR code as SVG: {the_stack.home / 'buyer-qr.svg'})")
        print(live.qr_text(url))
        console.print(f"admin token for POST /api/admin/reset: in {the_stack.home / 'admin-token'}", highlight=False)
    else:
        console.print(f"\nbuyer page: {the_stack.settings.gateway_url}/   sync shop: {the_stack.settings.shop_url}",
                      highlight=False)


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable.")):
    """One row per component: pid, address, healthy; and the sale's counts."""
    status_ = stack().status()
    if not any(info["healthy"] for group in ("infra", "services") for info in status_[group].values()):
        typer.echo("the stack is not up: run `flashsale up`", err=True)
    if as_json:
        print(json.dumps(status_, default=str))
    else:
        print_status(status_)


def print_status(status_: dict) -> None:
    table = Table("component", "pid", "address", "healthy")
    for group in ("infra", "services"):
        for name, info in status_[group].items():
            label = f"{name} ({info['broker']})" if "broker" in info else name
            table.add_row(label, str(info["pid"] or "-"), info["url"], "[green]yes[/]" if info["healthy"] else "[red]no[/]")
    console.print(table)
    if status_.get("sale"):
        console.print("sale: " + ", ".join(f"{k} {v}" for k, v in status_["sale"].items()), highlight=False)


@app.command()
def down():
    """Stop everything the stack started."""
    stack().down()
    console.print("stopped")


@app.command()
def kill(service: str, signal_: str = typer.Option("KILL", "--signal", help="KILL or TERM")):
    """Kill one service or server, as a crash would (fault injection)."""
    try:
        pids = stack().kill(service, getattr(signal, f"SIG{signal_.upper()}"))
    except StackError as error:
        fail(error)
    console.print(f"sent SIG{signal_.upper()} to {service}: {pids or 'it was not running'}")


@app.command()
def restart(service: str):
    """Restart one service or server and wait until it is healthy."""
    if service not in (*SERVICES, *INFRA):
        fail(StackError(f"Unknown component {service!r}: one of {', '.join((*SERVICES, *INFRA))}."))
    try:
        stack().restart(service)
    except StackError as error:
        fail(error)
    console.print(f"{service} is healthy")


@app.command()
def scale(service: str, instances: int):
    """Run N instances of a consumer service (on Apache Kafka the others keep running while the group rebalances),
    or N gateways, each on a port of its own."""
    try:
        the_stack = stack()
        the_stack.scale(service, instances)
    except StackError as error:
        fail(error)
    running = the_stack.processes(service)
    members = ", ".join(f"{name} {p.url}" if p.url.startswith("http") else name for name, p in running.items())
    console.print(f"{service}: {instances} running ({members})", highlight=False)


@app.command()
def reset(stock: Optional[int] = typer.Option(None), per_user_limit: Optional[int] = typer.Option(None)):
    """Start a new sale: fresh stock, old orders out of every count."""
    try:
        sale = stack().reset(stock, per_user_limit)
    except Exception as error:
        fail(StackError(f"cannot reach the stack ({error}); run `flashsale up` first"))
    console.print(f"sale {sale.saleId}: {sale.initialStock} x {sale.name}, at most {sale.perUserLimit} per buyer")


@app.command()
def logs(service: str = typer.Argument("gateway"), lines: int = typer.Option(40, "-n")):
    """Show the end of a service's log."""
    path = stack().log_path(service)
    if not path.exists():
        fail(StackError(f"no log for {service!r} at {path}"))
    console.print("\n".join(path.read_text(errors="replace").splitlines()[-lines:]), highlight=False, markup=False)


@app.command()
def demo(buyers: int = typer.Option(1000), stock: int = typer.Option(100),
         scenario: str = typer.Option("normal", help="What goes wrong mid-race: normal, payment-outage or db-stall."),
         report: Path = typer.Option(Path("flashsale-report.html"), help="Where to write the HTML report."),
         as_json: Optional[Path] = typer.Option(None, "--json", help="Also write the figures here, as JSON.")):
    """The same buyers race the naive, locked, reserve-then-pay and event-driven checkouts: a table and a report."""
    from flashsale.demo import SCENARIOS, run_demo

    if scenario not in SCENARIOS:
        fail(StackError(f"Unknown scenario {scenario!r}: one of {', '.join(SCENARIOS)}."))
    try:
        ok = run_demo(stack(), buyers=buyers, stock=stock, scenario=scenario, report=report, as_json=as_json,
                      console=console)
    except StackError as error:
        fail(error)
    console.print("The stack is still running in the background: `flashsale down` stops it.", highlight=False)
    raise typer.Exit(0 if ok else 2)


@app.command()
def pause(component: str, seconds: float):
    """Freeze a component (SIGSTOP) for SECONDS, then resume it (SIGCONT): a stalled database, a frozen consumer."""
    console.print(f"pausing {component} for {seconds:g} s...")
    try:
        pids = stack().pause(component, seconds)
    except StackError as error:
        fail(error)
    console.print(f"{component} resumed: {pids}")


@app.command()
def psp(delay: Optional[int] = typer.Option(None, help="Milliseconds each new charge takes."),
        failure_rate: Optional[float] = typer.Option(None, help="The share of new charges declined, 0 to 1."),
        outage: Optional[float] = typer.Option(None, help="Down from now for this many seconds (503); 0 ends it.")):
    """Change the payment provider's behaviour live; with no option, show it."""
    from flashsale.adapters import psp as provider

    settings = stack().wired()
    try:
        now = provider.behaviour(settings.psp_url, settings.admin_token, delayMs=delay, failureRate=failure_rate,
                                 outageSeconds=outage)
    except httpx.HTTPStatusError as error:
        fail(StackError(f"the payment provider refused: {error.response.text}"))
    except httpx.TransportError:
        fail(StackError(f"no payment provider at {settings.psp_url}: run `flashsale up`"))
    console.print(f"payment provider: delay {now['delayMs']} ms, failure rate {now['failureRate']:g}, "
                  f"outage {now['outageLeftS']:g} s left", highlight=False)


@app.command()
def dlq(replay: bool = typer.Option(False, "--replay", help="Send the letters not sent back yet to their topic: "
                                                            "safe, every handler is idempotent. Fix the cause first."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable."),
        topic: Optional[list[str]] = typer.Option(None, help="A topic whose dead letters to read; again for more "
                                                             "(default: every topic of the sale).")):
    """List the dead letters: messages put aside, whose orders stay PENDING until someone looks."""
    from confluent_kafka import KafkaException

    from flashsale.events import TOPICS
    from flashsale.lab import dlq as dead

    settings = stack().wired()
    try:
        letters = (dead.replay if replay else dead.letters)(settings, topic or list(TOPICS))
    except (KafkaException, TimeoutError) as error:
        fail(StackError(f"cannot read the dead letters at {settings.kafka_bootstrap_servers} ({error}): "
                        "run `flashsale up`"))
    if as_json:
        print(json.dumps([letter.as_dict() for letter in letters]))
        return
    table = Table("dead letter", "from", "key", "error", "replayed", title="sent back" if replay else "dead letters")
    for letter in letters:
        origin = f"{letter.topic}[{letter.partition}]@{letter.offset}" if letter.offset is not None else letter.topic
        table.add_row("{}[{}]@{}".format(*letter.at), origin, (letter.key or b"").decode(errors="replace"),
                      letter.error.splitlines()[0][:80] if letter.error else "-", "yes" if letter.replayed else "no")
    console.print(table)
    console.print(f"{len(letters)} sent back to their topics" if replay else
                  f"{sum(not letter.replayed for letter in letters)} not sent back: `flashsale dlq --replay`, "
                  "once the cause is fixed", highlight=False)


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
          broker: Optional[str] = typer.Option(None, help="tansu or kafka (default: the broker setting).")):
    """Benchmarks side by side: ceiling, event-driven, locked, naive; end-to-end latency, fan-out and CPU per
    order at a fixed offered load; settle rate."""
    from flashsale.bench import run_bench, worst

    try:
        chosen: dict[str, Any] = {"broker": broker} if broker else {}
        settings = Settings(**chosen)
    except ValidationError as error:
        fail(invalid(error))
    try:
        result = worst([run_bench(settings, connections, seconds, browsers, rate, warm_up) for _ in range(runs)])
    except StackError as error:
        fail(error)
    table = Table("system", "accepted/s", "p50 ms", "p99 ms", "errors", title="flashsale bench")
    for system, accepted in result["accept_per_s"].items():
        p50, p99 = result["p50_accept_ms"][system], result["p99_accept_ms_by_system"][system]
        table.add_row(system, f"{accepted:,.0f}", "no answer" if p50 is None else f"{p50:,.1f}",
                      "in the run" if p99 is None else f"{p99:,.1f}", str(result["errors"][system]))
    console.print(table)
    console.print(f"event-driven vs locked: {result['ratio_event_vs_locked']}x; vs ceiling: "
                  f"{result['ratio_event_vs_ceiling']}; end-to-end at {rate}/s on {result['broker']}: "
                  f"p99 {result[f'p99_e2e_ms_at_{rate}']} ms (worst of {runs}); settles {result['settle_per_s']}/s; "
                  f"oversold {result['oversold']}, lost {result['lost']}", highlight=False)
    parts = ", ".join(f"{name} {ms}" for name, ms in result["cpu_ms_per_order_by_component"].items() if name != "total")
    console.print(f"CPU per order: {result['cpu_ms_per_order']} ms ({parts}); the no-op server: "
                  f"{result['cpu_ms_per_noop']} ms per request", highlight=False)
    fanout = result["fanout"]
    console.print(f"WebSocket fan-out to {fanout['clients']:,} browsers at {fanout['orders_per_s']:,.0f} orders/s: "
                  f"order updates p50 {fanout['order_update'].get('p50_ms')} ms, p99 "
                  f"{fanout['order_update'].get('p99_ms')} ms ({fanout['order_update']['received']:,} received of "
                  f"{fanout['published']['order_update']:,}); stock updates p99 {fanout['stock_update'].get('p99_ms')} "
                  f"ms", highlight=False)
    as_json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


@app.command()
def slides(output: Path = typer.Option(..., help="Folder for flashsale.html, the self-contained deck."),
           url: Optional[str] = typer.Option(None, help="Buyer URL for the QR code (default: this machine's, "
                                                        "as `up --public` prints it)."),
           measure: bool = typer.Option(False, help="Race this machine's stack first (as `flashsale demo`) and "
                                                    "record the numbers in slides/demo-run.json.")):
    """Build the talk's deck: one reveal.js HTML file that needs no network to show."""
    from flashsale import slides as deck

    if measure:
        try:
            record = deck.measure(stack())
        except StackError as error:
            fail(error)
        normal = record["scenarios"]["normal"]["systems"]
        console.print("recorded: " + ", ".join(f"{name} sold {s['sold']}" for name, s in normal.items()))
    try:
        path = deck.build(output, url=url)
    except Exception as error:  # a missing notebook, a cell that failed: say which, without a traceback
        fail(StackError(f"the deck did not build: {str(error).strip().splitlines()[-1]}"))
    console.print(f"deck: {path.resolve()} ({deck.count_slides(path.read_text())} slides)", highlight=False)


kafka_app = typer.Typer(help="Apache Kafka for the embedded broker.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")


@kafka_app.command("install")
def kafka_install():
    """Put Apache Kafka in the user's cache, once: with Maven if it is on the PATH, else Apache's release."""
    from flashsale.stack import kafka_dist

    try:
        folder = kafka_dist.install()
    except StackError as error:
        fail(error)
    console.print(f"Apache Kafka {kafka_dist.version(folder)}: {folder}", highlight=False)


@app.command()
def grade(paths: list[Path] = typer.Argument(..., exists=True, help="Submitted exercise notebooks, or folders of them."),
          csv_file: Optional[Path] = typer.Option(None, "--csv", help="Also write the table here, as CSV."),
          jobs: int = typer.Option(1, min=1, help="Notebooks graded at once, each with a stack of its own."),
          timeout: float = typer.Option(600, min=1, help="Seconds a notebook may run, its stack's start included.")):
    """Grade submitted exercise notebooks: each one's task cells against a fresh stack and the kit's own check."""
    from flashsale import grade as grading

    try:
        grading.main(paths, csv_file, jobs, timeout)
    except FileNotFoundError as error:
        fail(error)


@app.command()
def lab(port: int = typer.Option(8888)):
    """Open JupyterLab on the notebooks."""
    notebooks = Path(__file__).resolve().parent.parent / "notebooks"
    subprocess.run([sys.executable, "-m", "jupyter", "lab", f"--port={port}",
                    f"--notebook-dir={notebooks if notebooks.exists() else Path.cwd()}"])


if __name__ == "__main__":
    app()

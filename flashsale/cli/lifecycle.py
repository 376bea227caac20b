"""Bring the stack up, look at it, scale it, start a new sale, read its logs, take it down."""
import json
from pathlib import Path

import typer

from flashsale.cli.common import console, fail, print_status, stack, stack_or_fail
from flashsale.stack.processes import StackError

app = typer.Typer()


@app.command()
def up(infra: str | None = typer.Option(None, help="embedded | docker | external"),
       broker: str | None = typer.Option(None, help="The embedded broker: tansu (the default, zero install) "
                                                     "or kafka (Apache Kafka 4.x: `flashsale kafka install`)."),
       durable: bool | None = typer.Option(None, "--durable/--fast", help=(
           "tansu's log on S3 storage (SeaweedFS), the default: a kill -9 of the broker loses no accepted order. "
           "--fast: tansu in memory, up in about half the time, and it GIVES UP DURABILITY: a crash of the broker "
           "loses every accepted order it still held.")),
       kafka_nodes: int | None = typer.Option(None, help="Apache Kafka nodes: 1, or 3 (each a controller and a "
                                                         "broker; 3 replicas, min.insync.replicas 2)."),
       public: bool = typer.Option(False, help="Live mode: listen on all interfaces for an audience."),
       stock: int | None = typer.Option(None, help="Start a new sale with this stock.")) -> None:
    """Start the infrastructure and every service; wait until all are healthy."""
    the_stack = stack_or_fail(public, infra=infra, broker=broker, durable=durable, kafka_nodes=kafka_nodes)
    try:
        status_ = the_stack.up(stock=stock)
    except StackError as error:
        fail(error)
    print_status(status_)
    console.print(f"broker: {the_stack.profile.promise}", highlight=False)
    settings = the_stack.settings
    if settings.public:
        from flashsale import live

        url = live.buyer_url(settings.gateway_port)
        live.qr_svg(url, the_stack.home / "buyer-qr.svg")
        console.print(f"\n[bold]Buy at {url}[/bold]  (QR code as SVG: {the_stack.home / 'buyer-qr.svg'})")
        print(live.qr_text(url))
        console.print(f"admin token for POST /api/admin/reset: in {the_stack.home / 'admin-token'}", highlight=False)
    else:
        console.print(f"\nbuyer page: {settings.gateway_url}/   sync shop: {settings.shop_url}", highlight=False)


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable.")) -> None:
    """One row per component: pid, address, healthy; and the sale's counts."""
    status_ = stack().status()
    if not status_.anything_healthy:
        typer.echo("the stack is not up: run `flashsale up`", err=True)
    if as_json:
        print(json.dumps(status_.as_dict(), default=str))
    else:
        print_status(status_)


@app.command()
def down() -> None:
    """Stop everything the stack started."""
    stack().down()
    console.print("stopped")


@app.command()
def scale(service: str, instances: int) -> None:
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
def reset(stock: int | None = typer.Option(None), per_user_limit: int | None = typer.Option(None)) -> None:
    """Start a new sale: fresh stock, old orders out of every count."""
    try:
        sale = stack().reset(stock, per_user_limit)
    except Exception as error:
        fail(StackError(f"cannot reach the stack ({error}); run `flashsale up` first"))
    console.print(f"sale {sale.saleId}: {sale.initialStock} x {sale.name}, at most {sale.perUserLimit} per buyer")


@app.command()
def logs(service: str = typer.Argument("gateway"), lines: int = typer.Option(40, "-n")) -> None:
    """Show the end of a service's log."""
    path: Path = stack().log_path(service)
    if not path.exists():
        fail(StackError(f"no log for {service!r} at {path}"))
    console.print("\n".join(path.read_text(errors="replace").splitlines()[-lines:]), highlight=False, markup=False)

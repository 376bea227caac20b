"""The demo (four checkouts race the same buyers) and the talk's deck built from it."""
from pathlib import Path

import typer

from flashsale.cli.common import console, fail, stack
from flashsale.stack.processes import StackError

app = typer.Typer()


@app.command()
def demo(buyers: int = typer.Option(1000), stock: int = typer.Option(100),
         scenario: str = typer.Option("normal", help="What goes wrong mid-race: normal, payment-outage or db-stall."),
         report: Path = typer.Option(Path("flashsale-report.html"), help="Where to write the HTML report."),
         as_json: Path | None = typer.Option(None, "--json", help="Also write the figures here, as JSON.")) -> None:
    """The same buyers race the naive, locked, reserve-then-pay and event-driven checkouts: a table and a report."""
    from flashsale.demo import run_demo
    from flashsale.harness.races import SCENARIOS

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
def slides(output: Path = typer.Option(..., help="Folder for flashsale.html, the self-contained deck."),
           url: str | None = typer.Option(None, help="Buyer URL for the QR code (default: this machine's, "
                                                     "as `up --public` prints it)."),
           measure: bool = typer.Option(False, help="Race this machine's stack first (as `flashsale demo`) and "
                                                    "record the numbers in slides/demo-run.json.")) -> None:
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

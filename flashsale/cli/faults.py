"""Break a component and mend it: kill, restart, freeze; and the payment provider's weather."""
import signal

import httpx
import typer

from flashsale.cli.common import console, fail, stack
from flashsale.stack.control import INFRA, SERVICES
from flashsale.stack.processes import StackError

app = typer.Typer()


@app.command()
def kill(service: str, signal_: str = typer.Option("KILL", "--signal", help="KILL or TERM")) -> None:
    """Kill one service or server, as a crash would (fault injection)."""
    try:
        pids = stack().kill(service, getattr(signal, f"SIG{signal_.upper()}"))
    except StackError as error:
        fail(error)
    console.print(f"sent SIG{signal_.upper()} to {service}: {pids or 'it was not running'}")


@app.command()
def restart(service: str) -> None:
    """Restart one service or server and wait until it is healthy."""
    if service not in (*SERVICES, *INFRA):
        fail(StackError(f"Unknown component {service!r}: one of {', '.join((*SERVICES, *INFRA))}."))
    try:
        stack().restart(service)
    except StackError as error:
        fail(error)
    console.print(f"{service} is healthy")


@app.command()
def pause(component: str, seconds: float) -> None:
    """Freeze a component (SIGSTOP) for SECONDS, then resume it (SIGCONT): a stalled database, a frozen consumer."""
    console.print(f"pausing {component} for {seconds:g} s...")
    try:
        pids = stack().pause(component, seconds)
    except StackError as error:
        fail(error)
    console.print(f"{component} resumed: {pids}")


@app.command()
def psp(delay: int | None = typer.Option(None, help="Milliseconds each new charge takes."),
        failure_rate: float | None = typer.Option(None, help="The share of new charges declined, 0 to 1."),
        outage: float | None = typer.Option(None, help="Down from now for this many seconds (503); 0 ends it.")
        ) -> None:
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

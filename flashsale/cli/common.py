"""What every command shares: the stack it acts on, how it fails, the console it prints to."""
import sys
from typing import Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from flashsale.settings import Settings
from flashsale.stack.control import Stack
from flashsale.stack.probes import Status
from flashsale.stack.processes import StackError

console = Console(width=None if sys.stdout.isatty() else 140)  # a log file gets the whole table


def stack(public: bool = False, **overrides: Any) -> Stack:
    """`public`: live mode, with the stack's private admin token (Settings refuse the default one in public mode)."""
    return Stack(Settings(**{k: v for k, v in overrides.items() if v is not None}), public=public)


def stack_or_fail(public: bool = False, **overrides: Any) -> Stack:
    try:
        return stack(public, **overrides)
    except ValidationError as error:
        fail(invalid(error))


def invalid(error: ValidationError) -> StackError:
    return StackError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()))


def fail(error: Exception) -> NoReturn:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(1)


def print_status(status: Status) -> None:
    table = Table("component", "pid", "address", "healthy")
    for group in (status.infra, status.services):
        for name, info in group.items():
            label = f"{name} ({info.broker})" if info.broker else name
            table.add_row(label, str(info.pid or "-"), info.url, "[green]yes[/]" if info.healthy else "[red]no[/]")
    console.print(table)
    if status.sale:
        console.print("sale: " + ", ".join(f"{k} {v}" for k, v in status.sale.as_dict().items()), highlight=False)

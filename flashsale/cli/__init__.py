"""The `flashsale` command: a thin shell over `stack.control.Stack`, the demo, the bench and the lab.

One module per group of commands. A module makes its commands on its own `app = typer.Typer()`; adding one is a
line in COMMANDS (or, for a group with a name of its own, `flashsale kafka ...`, in GROUPS).
"""
import typer

from flashsale.cli import bench, demo, dlq, faults, kafka, lab, lifecycle, room

COMMANDS = (lifecycle, faults, dlq, demo, bench, room, lab)  # in the order `flashsale --help` lists them
GROUPS = {"kafka": kafka}  # `flashsale kafka install`

app = typer.Typer(help="A flash sale lab: oversell it, then fix it with events.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
for module in COMMANDS:
    app.add_typer(module.app)
for name, module in GROUPS.items():
    app.add_typer(module.app, name=name)

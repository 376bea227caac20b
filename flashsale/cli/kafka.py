"""`flashsale kafka ...`: Apache Kafka for the embedded broker."""
from pathlib import Path

import typer

from flashsale.cli.common import console, fail, stack
from flashsale.stack.processes import StackError

app = typer.Typer(help="Apache Kafka for the embedded broker.", no_args_is_help=True)


@app.command("install")
def install(source: Path | None = typer.Option(None, "--from", help="An offline bundle's folder "
                                                                        "(`flashsale bundle`): no network.")) -> None:
    """Put Apache Kafka in the user's cache, once: with Maven if it is on the PATH, else Apache's release."""
    from flashsale.stack import kafka_dist

    try:
        folder = kafka_dist.install(source=source)
    except StackError as error:
        fail(error)
    console.print(f"Apache Kafka {kafka_dist.version(folder)}: {folder}", highlight=False)


@app.command("tool", context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                      "help_option_names": []})
def tool(ctx: typer.Context, name: str | None = typer.Argument(None, help="kafka-topics, kafka-consumer-groups, "
                                                                            "kafka-console-consumer, ...")) -> None:
    """Run one of Kafka's own command-line tools from the installed jars against the running broker."""
    from flashsale.stack import kafka_tools

    try:
        raise typer.Exit(kafka_tools.main(name, ctx.args, stack().wired()))
    except StackError as error:
        fail(error)

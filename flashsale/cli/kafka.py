"""`flashsale kafka ...`: Apache Kafka for the embedded broker."""
import typer

from flashsale.cli.common import console, fail
from flashsale.stack.processes import StackError

app = typer.Typer(help="Apache Kafka for the embedded broker.", no_args_is_help=True)


@app.command("install")
def install() -> None:
    """Put Apache Kafka in the user's cache, once: with Maven if it is on the PATH, else Apache's release."""
    from flashsale.stack import kafka_dist

    try:
        folder = kafka_dist.install()
    except StackError as error:
        fail(error)
    console.print(f"Apache Kafka {kafka_dist.version(folder)}: {folder}", highlight=False)

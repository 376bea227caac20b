"""Dead letters: list them, and send them back once their cause is fixed."""
import json

import typer
from rich.table import Table

from flashsale.cli.common import console, fail, stack
from flashsale.stack.processes import StackError

app = typer.Typer()


@app.command()
def dlq(replay: bool = typer.Option(False, "--replay", help="Send the letters not sent back yet to their topic: "
                                                            "safe, every handler is idempotent. Fix the cause first."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable."),
        topic: list[str] | None = typer.Option(None, help="A topic whose dead letters to read; again for more "
                                                          "(default: every topic of the sale).")) -> None:
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

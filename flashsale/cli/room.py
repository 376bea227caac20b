"""`flashsale doctor`, `flashsale bundle` and `flashsale grade`: a room's preparation, and its marking after."""
from pathlib import Path

import typer

from flashsale.cli.common import console, fail, stack_or_fail
from flashsale.stack.processes import StackError

app = typer.Typer()


@app.command()
def doctor(as_json: bool = typer.Option(False, "--json", help="Machine-readable: {ok, checks: [{name, ok, detail, "
                                                               "fix}]}."),
           start: bool = typer.Option(False, "--start", help="Also start a throw-away stack on free ports in a "
                                                            "temporary home: its time to healthy and its memory."),
           ) -> None:
    """Check this machine for the lab: one line per check, ✔ or ✗ with its fix; exit 1 when something blocks it."""
    from flashsale import doctor as checkup

    raise typer.Exit(checkup.main(stack_or_fail().settings, as_json, start))


@app.command()
def bundle(folder: Path = typer.Argument(..., help="Where to write wheels/, kafka/, notebooks/ and INSTALL.md."),
           platform: list[str] | None = typer.Option(None, help="linux-x86_64, linux-aarch64, macos-arm64 "
                                                                    "or macos-x86_64 (Windows: WSL 2 is linux); again "
                                                                    "for more (default: this machine's)."),
           python: list[str] | None = typer.Option(None, help="3.11, 3.12, ...; again for more (default: this "
                                                                  "one).")) -> None:
    """Write an offline bundle: every wheel the kit needs (sdists named where no wheel exists), Kafka's jars and an
    INSTALL.md; then `pip install --no-index --find-links DIR/wheels flashsale` needs no network."""
    from flashsale import bundle as offline

    try:
        offline.build(folder, platform or [], python or [], say=lambda line: console.print(line, highlight=False))
    except StackError as error:
        fail(error)
    console.print(f"bundle: {folder.resolve()}; read {folder / 'INSTALL.md'}", highlight=False)


@app.command()
def grade(paths: list[Path] = typer.Argument(..., exists=True, help="Submitted exercise notebooks, or folders."),
          csv_file: Path | None = typer.Option(None, "--csv", help="Also write the table here, as CSV."),
          jobs: int = typer.Option(1, min=1, help="Notebooks graded at once, each with a stack of its own."),
          timeout: float = typer.Option(600, min=1, help="Seconds a notebook may run, its stack's start included."),
          ) -> None:
    """Grade submitted exercise notebooks: each one's task cells against a fresh stack and the kit's own check."""
    from flashsale import grade as grading

    try:
        grading.main(paths, csv_file, jobs, timeout)
    except FileNotFoundError as error:
        fail(error)

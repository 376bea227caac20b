"""Keep the notebooks tidy: generated navigation and contents cells, no outputs, no execution counts.

    python tools/notebooks.py          # rewrite them in place (run it before committing a notebook)
    python tools/notebooks.py --check  # exit 1 if any notebook is not as this tool would write it
    python tools/notebooks.py --time 03-event-driven 05-scaling   # run them (nbval), record their run time
    python tools/notebooks.py --time 09-replication --broker kafka --runs 3   # the least of 3 runs on Kafka

Generated cells carry the metadata {"flashsale": "nav"} or {"flashsale": "contents"}: never edit them by
hand. The navigation (previous | contents | next) opens and closes every notebook; the contents table,
in the first notebook, lists each notebook's title, goal and minutes from its metadata ("flashsale":
{"goal", "minutes", "minutes_room"}); a lesson's closing navigation links the exercises it prepares
("exercises"). The minutes are computed (`minutes`), never typed: a lesson that grows gets more. The tool also
writes them into the README's tables and the teaching notes' workshop plan (`MINUTES_IN`), and `--check` fails
where they are stale. A cell marked NBVAL_CHECK_OUTPUT keeps its output and an execution count: that
output is the lesson's fact, which `pytest --nbval-lax` compares the fresh run against.
"""
import ast
import datetime
import inspect
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
DOCS = NOTEBOOKS.parent / "docs"
SOLUTIONS = NOTEBOOKS / "solutions"
RUNS = Path(__file__).with_name("runs.json")  # each notebook's measured run: seconds, broker, command, date
CHECKED = "NBVAL_CHECK_OUTPUT"
GENERATED = ("nav", "contents")

# A learner's minutes for a notebook, alone (self-paced) and in a room (a workshop): its measured run (`RUNS`:
# the cells' seconds in an nbval run on the broker it needs, the stack's start-up included; the learner waits
# for every cell too), plus reading technical prose at 110 words a minute and code at 8 lines a minute (the
# cells' own lines and every line `lab.show` prints), plus each prediction: 2 minutes alone (read the choices,
# pick, write the guess), 4 in a room (the room argues first). An exercise adds writing its task, a line of the
# solution a minute, and a second run of its check (a first attempt rarely passes). Rounded up to 5 minutes. A
# model with measured inputs, not a stopwatch held over a room of learners: the README and teaching notes say so.
PROSE_WPM, CODE_LPM, WRITE_LPM, CHECK_RUNS = 110, 8, 1, 2
PREDICTION_MIN = {"alone": 2, "room": 4}
PREDICTION = "## What do you expect?"
SOLUTION = re.compile(r"^[ \t]*### BEGIN SOLUTION[^\n]*\n(.*?)^[ \t]*### END SOLUTION", re.M | re.S)


@dataclass(frozen=True)
class Minutes:
    alone: int
    room: int


def runs() -> dict:
    return json.loads(RUNS.read_text())


def _round(total: float) -> int:
    return 5 * math.ceil(total / 5)


def reading(nb) -> tuple[int, int, int]:
    """Words of prose, lines of code read (the cells' own and what `lab.show` prints), predictions."""
    cells = [c for c in nb.cells if c.metadata.get("flashsale") not in GENERATED]
    words = sum(len(c.source.split()) for c in cells if c.cell_type == "markdown")
    code = [c.source for c in cells if c.cell_type == "code"]
    lines = sum(len(s.splitlines()) for s in code) + shown_lines(code)
    predictions = sum(c.source.count(PREDICTION) for c in cells if c.cell_type == "markdown")
    return words, lines, predictions


def minutes(nb, name: str) -> Minutes:
    """A lesson's minutes, or an exercise's when `nb` is its solution (what the learner writes is the solution)."""
    words, lines, predictions = reading(nb)
    written = sum(len(m.group(1).splitlines()) for c in nb.cells if c.cell_type == "code"
                  for m in SOLUTION.finditer(c.source))
    if name not in runs():
        raise LookupError(f"{name} has no measured run in {RUNS.name}: `python tools/notebooks.py --time {name}`")
    run_min = runs()[name]["seconds"] / 60 * (CHECK_RUNS if written else 1)
    base = run_min + words / PROSE_WPM + (lines - written) / CODE_LPM + written / WRITE_LPM
    return Minutes(*(_round(base + predictions * PREDICTION_MIN[who]) for who in ("alone", "room")))


def shown_lines(sources: list[str]) -> int:
    """The lines `lab.show(...)` prints in these cells: the real source of what it is given, or the text it is
    given. The notebook's imports are run to find each object; of `a if x else b`, the first is counted (05
    shows the Apache Kafka class, the broker it runs on when it can); a name the notebook defines itself is
    in its cells already, and counts nothing more."""
    trees = [compile(s, "<cell>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT) for s in sources]
    space: dict = {}
    for tree in trees:
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                exec(compile(ast.Module([node], []), "<imports>", "exec"), space)  # noqa: S102 - our notebooks
    total = 0
    for call in (n for tree in trees for n in ast.walk(tree) if isinstance(n, ast.Call)):
        if isinstance(call.func, ast.Attribute) and call.func.attr == "show" and call.args:
            shown = call.args[0].body if isinstance(call.args[0], ast.IfExp) else call.args[0]
            try:
                thing = eval(compile(ast.Expression(shown), "<show>", "eval"), space)  # noqa: S307
            except NameError:
                continue
            total += len((thing if isinstance(thing, str) else inspect.getsource(thing)).splitlines())
    return total


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


def title(nb) -> str:
    """The first `# ` heading of the first hand-written markdown cell."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.metadata.get("flashsale") not in GENERATED:
            return next(line[2:].strip() for line in cell.source.splitlines() if line.startswith("# "))
    raise ValueError("a notebook needs a `# Title` in its first markdown cell")


def nav_cell(paths: list[Path], titles: list[str], i: int, where: str, exercises: list[str] = ()):
    previous = f"[← {titles[i - 1]}]({paths[i - 1].name})" if i > 0 else "← (this is the first)"
    following = f"[{titles[i + 1]} →]({paths[i + 1].name})" if i + 1 < len(paths) else "(this is the last) →"
    docs = os.path.relpath(DOCS, paths[i].parent)  # lessons sit in notebooks/, exercises one folder deeper
    text = (f"{previous} | [Contents]({paths[0].name}#Contents) | [Cheat sheet]({docs}/cheatsheet.md) | "
            f"[Glossary]({docs}/glossary.md) | {following}")
    if exercises and where == "bottom":  # the exercises this lesson prepares, from its metadata
        text += "\n\nExercises after this lesson: " + ", ".join(
            f"[{name[:2]} · {name[3:].replace('-', ' ')}](exercises/{name}.ipynb)" for name in exercises)
    return _generated(nbformat.v4.new_markdown_cell(text), "nav", f"nav-{where}")


def contents_cell(paths: list[Path], notebooks: list) -> object:
    """The contents table: minutes alone and in a room where the notebooks have both (the lessons), else one column."""
    keys = ["minutes", "minutes_room"] if all("minutes_room" in nb.metadata["flashsale"] for nb in notebooks) \
        else ["minutes"]
    head = "| notebook | goal | alone | in a room |" if len(keys) == 2 else "| notebook | goal | minutes |"
    rows = [f"| [{title(nb)}]({path.name}) | {nb.metadata['flashsale']['goal']} | "
            + " | ".join(str(nb.metadata["flashsale"][k]) for k in keys) + " |"
            for path, nb in zip(paths, notebooks, strict=True)]
    totals = " | ".join(str(sum(nb.metadata["flashsale"][k] for nb in notebooks)) for k in keys)
    text = "\n".join(["## Contents", "", head, "| --- | --- |" + " --- |" * len(keys), *rows,
                      f"| | the whole lab | {totals} |"])
    return _generated(nbformat.v4.new_markdown_cell(text), "contents", "contents")


def _generated(cell, kind: str, cell_id: str):
    cell.metadata["flashsale"] = kind
    cell.id = cell_id
    return cell


def tidy(nb, i: int, paths: list[Path], titles: list[str], notebooks: list):
    cells = [c for c in nb.cells if c.metadata.get("flashsale") not in GENERATED]
    code_cells = [c for c in cells if c.cell_type == "code"]
    for cell in cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in ("tags", "flashsale")}
    for count, cell in enumerate(code_cells, start=1):
        # nbval compares only cells that were run: a checked cell keeps the count a top-to-bottom run gives it.
        cell.execution_count = count if CHECKED in cell.source else None
        if CHECKED not in cell.source:
            cell.outputs = []
        for output in cell.outputs:
            if output.get("output_type") == "execute_result":
                output["execution_count"] = cell.execution_count
    if i == 0:
        cells.insert(1, contents_cell(paths, notebooks))
    exercises = nb.metadata.get("flashsale", {}).get("exercises", [])
    nb.cells = [nav_cell(paths, titles, i, "top"), *cells, nav_cell(paths, titles, i, "bottom", exercises)]
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in ("kernelspec", "language_info", "flashsale")}
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def problems(nb, path: Path) -> list[str]:
    found = []
    for cell in nb.cells:
        if cell.cell_type == "code" and CHECKED in cell.source and not cell.outputs:
            found.append(f"{path.name}: a {CHECKED} cell has no expected output:\n{cell.source}")
    return found


def record_times(names: list[str], broker: str | None, runs_each: int = 1) -> None:
    """Run each notebook under nbval (tools/stability.py, as the suite does) and keep the least of its runs' seconds
    in the cells, with the command and the date: a shared machine only ever makes a run slower."""
    import stability

    for path in [*notebook_paths(), *sorted(SOLUTIONS.glob("[0-9][0-9]-*.ipynb"))]:
        if path.stem in names:
            done = [stability.run_once(path, broker, None, n) for n in range(1, runs_each + 1)]
            passed = [sum(c["seconds"] for c in run["cells"]) for run in done if run["returncode"] == 0]
            if not passed:
                print(f"{path.stem}: no run passed, nothing recorded: {[run['summary'] for run in done]}")
                continue
            recorded = runs()  # read again: another --time may have written meanwhile
            recorded[path.stem] = {
                "seconds": round(min(passed)), "broker": broker or "its default", "date": str(datetime.date.today()),
                "command": f"python tools/notebooks.py --time {path.stem}" + (f" --broker {broker}" if broker else "")
                           + (f" --runs {runs_each}" if runs_each > 1 else "")}
            RUNS.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
            print(f"{path.stem}: {recorded[path.stem]['seconds']} s")


def exercise_minutes() -> dict[str, Minutes]:
    return {path.stem: minutes(nbformat.read(path, as_version=4), path.stem)
            for path in sorted(SOLUTIONS.glob("[0-9][0-9]-*.ipynb"))}


# Where the minutes are written besides the notebooks: (file, a row's pattern with the notebook's name, a total's).
MINUTES_IN = ("README.md", "docs/teaching.md")


def in_step(text: str, lessons: dict[str, Minutes], exercises: dict[str, Minutes]) -> str:
    """`text` with every minutes figure the tool owns rewritten: the README's tables (`| `00-setup` | goal | 10 |
    15 |`, `| 10-idempotent-reservation | task | check | 20 | 25 |`, their totals) and the workshop plan's
    bracketed minutes (`Notebook `01` (10 min in a room)`, `` `13-poison-message` (15 min in a room) ``, `` `00` (10
    min alone) ``)."""
    both = {**lessons, **exercises}
    for name, m in lessons.items():
        text = re.sub(rf"^(\| `{name}` \|.*\| )\d+ \| \d+( \|)$", rf"\g<1>{m.alone} | {m.room}\2", text, flags=re.M)
    for name, m in exercises.items():
        text = re.sub(rf"^(\| {name} \|.*\| )\d+ \| \d+( \|)$", rf"\g<1>{m.alone} | {m.room}\2", text, flags=re.M)
    for label, group in (("the whole lab", lessons), ("every exercise", exercises)):
        text = re.sub(rf"^(\| \| {label}.*\| )\d+ \| \d+( \|)$",
                      rf"\g<1>{sum(m.alone for m in group.values())} | {sum(m.room for m in group.values())}\2",
                      text, flags=re.M)
    return re.sub(r"`(\d\d)(-[a-z-]+)?` \((\d+) min (in a room|alone)\)",
                  lambda m: f"`{m[1]}{m[2] or ''}` ({getattr(_named(both, m[1]), WHO[m[4]])} min {m[4]})", text)


WHO = {"in a room": "room", "alone": "alone"}


def _named(minutes_of: dict[str, Minutes], number: str) -> Minutes:
    return next(m for name, m in minutes_of.items() if name.startswith(number + "-"))


def main(check: bool) -> int:
    paths = notebook_paths()
    notebooks = [nbformat.read(path, as_version=4) for path in paths]
    lessons = {path.stem: minutes(nb, path.stem) for path, nb in zip(paths, notebooks, strict=True)}
    for path, nb in zip(paths, notebooks, strict=True):  # before any is written: the first's contents list them all
        nb.metadata["flashsale"].pop("run_s", None)  # measured runs live in tools/runs.json, with their command
        nb.metadata["flashsale"]["minutes"] = lessons[path.stem].alone
        nb.metadata["flashsale"]["minutes_room"] = lessons[path.stem].room
    titles = [title(nb) for nb in notebooks]
    stale, errors = [], []
    for i, (path, nb) in enumerate(zip(paths, notebooks, strict=True)):
        text = nbformat.writes(tidy(nb, i, paths, titles, notebooks), version=4) + "\n"
        errors += problems(nb, path)
        if path.read_text() != text:
            stale.append(path.name)
            if not check:
                path.write_text(text)
    exercises = exercise_minutes()
    for name in MINUTES_IN:
        path = ROOT / name
        text = in_step(path.read_text(), lessons, exercises)
        if path.read_text() != text:
            stale.append(name)
            if not check:
                path.write_text(text)
    for error in errors:
        print(error, file=sys.stderr)
    if check and stale:
        print(f"not tidy (run `python tools/notebooks.py`): {', '.join(stale)}", file=sys.stderr)
    elif stale:
        print(f"rewrote {', '.join(stale)}")
    return 1 if errors or (check and stale) else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--time"]:
        args = sys.argv[2:]
        broker = args[args.index("--broker") + 1] if "--broker" in args else None
        each = int(args[args.index("--runs") + 1]) if "--runs" in args else 1
        names = [a for a in args if not a.startswith("--") and a not in (broker, str(each))]
        record_times(names or [path.stem for path in notebook_paths()], broker, each)
        sys.exit(0)  # then `python tools/notebooks.py` writes the minutes the new runs give
    sys.exit(main(check="--check" in sys.argv[1:]))

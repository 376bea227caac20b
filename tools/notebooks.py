"""Keep the notebooks tidy: generated navigation and contents cells, no outputs, no execution counts.

    python tools/notebooks.py          # rewrite them in place (run it before committing a notebook)
    python tools/notebooks.py --check  # exit 1 if any notebook is not as this tool would write it
    python tools/notebooks.py --time 03-event-driven 05-scaling   # run them (nbval), record their run time

Generated cells carry the metadata {"flashsale": "nav"} or {"flashsale": "contents"}: never edit them by
hand. The navigation (previous | contents | next) opens and closes every notebook; the contents table,
in the first notebook, lists each notebook's title, goal and minutes from its metadata ("flashsale":
{"goal", "minutes"}); a lesson's closing navigation links the exercises it prepares ("exercises"). The
minutes are computed (`minutes`), never typed: a lesson that grows gets more. A cell
marked NBVAL_CHECK_OUTPUT keeps its output and an execution count: that
output is the lesson's fact, which `pytest --nbval-lax` compares the fresh run against.
"""
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
DOCS = NOTEBOOKS.parent / "docs"
CHECKED = "NBVAL_CHECK_OUTPUT"
GENERATED = ("nav", "contents")

# A learner's minutes for a lesson: its own run, measured (`run_s` in its metadata, recorded by `--time`: the
# learner waits for every cell too), plus reading its prose at 180 words a minute (text read to learn from; adults
# read plain non-fiction at about 240, Brysbaert 2019), its code at 8 lines a minute, and 2 minutes for each
# prediction (read the choices, pick one, say why). Rounded up to 5 minutes. A model with measured inputs, not
# a stopwatch held over a room of learners: the README and the teaching notes say so.
PROSE_WPM, CODE_LPM, PREDICTION_MIN = 180, 8, 2
PREDICTION = "## What do you expect?"


def minutes(nb) -> int:
    cells = [c for c in nb.cells if c.metadata.get("flashsale") not in GENERATED]
    words = sum(len(c.source.split()) for c in cells if c.cell_type == "markdown")
    lines = sum(len(c.source.splitlines()) for c in cells if c.cell_type == "code")
    predictions = sum(c.source.count(PREDICTION) for c in cells if c.cell_type == "markdown")
    total = nb.metadata["flashsale"]["run_s"] / 60 + words / PROSE_WPM + lines / CODE_LPM
    return 5 * math.ceil((total + predictions * PREDICTION_MIN) / 5)


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
    rows = [f"| [{title(nb)}]({path.name}) | {nb.metadata['flashsale']['goal']} "
            f"| {nb.metadata['flashsale']['minutes']} |" for path, nb in zip(paths, notebooks, strict=True)]
    total = sum(nb.metadata["flashsale"]["minutes"] for nb in notebooks)
    text = "\n".join(["## Contents", "", "| notebook | goal | minutes |", "| --- | --- | --- |", *rows,
                      f"| | the whole lab | {total} |"])
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


def run_seconds(path: Path) -> float:
    """Run a notebook top to bottom as the suite does (nbval, a stack of its own); the seconds it took."""
    with tempfile.TemporaryDirectory() as home:
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "pytest", "-x", "--nbval-lax", "--nbval-cell-timeout=600", "-p",
                        "no:cacheprovider", f"--basetemp={home}/nbval", "-q", str(path)],
                       env={**os.environ, "FLASHSALE_HOME": home}, check=True, capture_output=True)
        return time.monotonic() - started


def record_times(names: list[str]) -> None:
    for path in notebook_paths():
        if path.stem in names:
            nb = nbformat.read(path, as_version=4)
            nb.metadata["flashsale"]["run_s"] = round(run_seconds(path))
            nbformat.write(nb, path)
            print(f"{path.stem}: {nb.metadata['flashsale']['run_s']} s")


def main(check: bool) -> int:
    paths = notebook_paths()
    notebooks = [nbformat.read(path, as_version=4) for path in paths]
    for nb in notebooks:  # before any is written: the contents table of the first lists them all
        nb.metadata["flashsale"]["minutes"] = minutes(nb)
    titles = [title(nb) for nb in notebooks]
    stale, errors = [], []
    for i, (path, nb) in enumerate(zip(paths, notebooks, strict=True)):
        text = nbformat.writes(tidy(nb, i, paths, titles, notebooks), version=4) + "\n"
        errors += problems(nb, path)
        if path.read_text() != text:
            stale.append(path.name)
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
        record_times(sys.argv[2:] or [path.stem for path in notebook_paths()])
    sys.exit(main(check="--check" in sys.argv[1:]))

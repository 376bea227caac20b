"""Student copies of the exercises, generated from their solutions, as fastbook's tools/clean.py does.

    python tools/exercises.py          # tidy notebooks/solutions/, (re)write notebooks/exercises/
    python tools/exercises.py --check  # exit 1 if a solution is untidy or a student copy is stale

Edit only the solutions. In a code cell, each region from `### BEGIN SOLUTION` to `### END SOLUTION`
becomes, in the student copy, a line that raises NotImplementedError, indented like the markers; in a
markdown cell it becomes "*Your answer here.*". Regions belong inside a function body: the stub then
fails only when the check calls the function. The task cells carry the metadata {"flashsale": "task"},
the check cells {"flashsale": "check"}. Both copies get the lessons' navigation and tidiness
(tools/notebooks.py): previous | contents | next, a contents table in the first, no outputs.
"""
import copy
import re
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import notebooks as lessons  # noqa: E402  (tools/notebooks.py)

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "notebooks" / "solutions"
EXERCISES = ROOT / "notebooks" / "exercises"
REGION = re.compile(r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*(?:\n|\Z)", re.M | re.S)
STUB = '{0}# YOUR CODE HERE\n{0}raise NotImplementedError("your code here: replace this line with your solution")\n'
ANSWER = "*Your answer here.*\n"
BANNER = ("*This is the solution. Learners work in [exercises/{0}](../exercises/{0}), which "
          "`python tools/exercises.py` writes from this notebook: edit this one, never that one.*")


def solution_paths() -> list[Path]:
    return sorted(SOLUTIONS.glob("[0-9][0-9]-*.ipynb"))


def strip(source: str, markdown: bool = False) -> str:
    """Each solution region becomes its stub."""
    return REGION.sub(lambda m: ANSWER if markdown else STUB.format(m.group(1)), source).rstrip("\n")


def tidy_solution(nb, i: int, paths: list[Path], titles: list[str], notebooks: list, name: str):
    nb = lessons.tidy(nb, i, paths, titles, notebooks)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    banner = nbformat.v4.new_markdown_cell(BANNER.format(name))
    banner.metadata["flashsale"], banner.id = "banner", "banner"
    nb.cells.insert(1, banner)
    return nb


def student_copy(solution):
    nb = copy.deepcopy(solution)
    nb.cells = [c for c in nb.cells if c.metadata.get("flashsale") != "banner"]
    for cell in nb.cells:
        if cell.cell_type in ("code", "markdown"):
            cell.source = strip(cell.source, markdown=cell.cell_type == "markdown")
    return nb


def problems(nb, path: Path) -> list[str]:
    found = []
    code = [c for c in nb.cells if c.cell_type == "code"]
    tasks = [c for c in code if c.metadata.get("flashsale") == "task"]
    if not tasks or not any(c.metadata.get("flashsale") == "check" for c in code):
        found.append(f"{path.name}: needs a task cell and a check cell (metadata flashsale: task / check)")
    for cell in nb.cells:
        if cell.source.count("### BEGIN SOLUTION") != cell.source.count("### END SOLUTION"):
            found.append(f"{path.name}: a BEGIN SOLUTION without its END SOLUTION (or the reverse):\n{cell.source}")
        elif cell.cell_type != "code":
            continue
        elif "### BEGIN SOLUTION" in cell.source and cell.metadata.get("flashsale") != "task":
            found.append(f"{path.name}: a solution region outside a task cell:\n{cell.source}")
        elif any(m.group(1) == "" for m in REGION.finditer(cell.source)):
            found.append(f"{path.name}: a solution region at the top level; put it in a function body:\n{cell.source}")
    for cell in tasks:
        if "### BEGIN SOLUTION" not in cell.source:
            found.append(f"{path.name}: a task cell without a solution region:\n{cell.source}")
    return found


def main(check: bool) -> int:
    paths = solution_paths()
    notebooks = [nbformat.read(path, as_version=4) for path in paths]
    for nb in notebooks:
        nb.cells = [c for c in nb.cells if c.metadata.get("flashsale") != "banner"]
    titles = [lessons.title(nb) for nb in notebooks]
    wanted: dict[Path, str] = {}
    errors = []
    for i, (path, nb) in enumerate(zip(paths, notebooks, strict=True)):
        errors += problems(nb, path)
        solution = tidy_solution(nb, i, paths, titles, notebooks, path.name)
        wanted[path] = nbformat.writes(solution, version=4) + "\n"
        wanted[EXERCISES / path.name] = nbformat.writes(student_copy(solution), version=4) + "\n"
    orphans = [p for p in EXERCISES.glob("*.ipynb") if p not in wanted]
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text] + orphans
    for error in errors:
        print(error, file=sys.stderr)
    if check:
        if stale:
            print("stale (run `python tools/exercises.py`): " + ", ".join(str(p.relative_to(ROOT)) for p in stale),
                  file=sys.stderr)
        return 1 if errors or stale else 0
    EXERCISES.mkdir(exist_ok=True)
    for path in stale:
        if path in orphans:
            path.unlink()
        else:
            path.write_text(wanted[path])
    for verb, paths_ in (("wrote", [p for p in stale if p not in orphans]), ("removed", orphans)):
        if paths_:
            print(f"{verb} " + ", ".join(str(p.relative_to(ROOT)) for p in paths_))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(check="--check" in sys.argv[1:]))

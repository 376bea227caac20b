"""A submitted notebook, read: whose it is, which exercise, the source of its task cells; and what to run.

Only the task cells come from the submission. Every other cell, the Check cell first of all, is the kit's
own (`notebooks/exercises/`), so a learner who edits the check or the setup grades nothing but the kit.

- The exercise: the notebook's `metadata.flashsale.goal` (each exercise's own), else the exercise's number in
  the file name (`alice-10.ipynb`), else the name its setup cell gives `lab.start("10-…")`.
- The learner: `metadata.flashsale.learner` when the notebook names one, else the file name without the
  exercise's (`alice-10-idempotent-reservation.ipynb` → alice), else the folder's name (`alice/10-….ipynb`).
- The task cells: the cells tagged `{"flashsale": "task"}`, in order, when there are as many as the kit has;
  else (tags lost to another editor, a cell deleted or split) for each of the kit's task cells, the last cell
  that defines its name (`def reserve_script`); none: the notebook fails, "task cell missing".
- A Check cell deleted (no cell tagged check, none with the kit's check source) fails the notebook, whatever
  the kit's check says of its code: the contract's rule, and a teacher wants to know.
"""
import ast
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from IPython.core.inputtransformer2 import TransformerManager

from flashsale.grade import outcome, probe

KIT = Path(__file__).resolve().parents[2] / "notebooks" / "exercises"


@dataclass(frozen=True)
class Step:
    kind: str  # setup, probe, task, try (the kit's cells between the tasks and the check), check, teardown
    source: str
    where: str  # for the teacher: "task cell 1", "the Check cell", "code cell 5 (a try-out of the task)"
    nonce: str = ""  # a probe's: what starts the line it prints


@dataclass
class Submission:
    path: Path
    learner: str
    exercise: str  # the kit's notebook, "10-idempotent-reservation"; "" when it is not known
    tasks: list[str] = field(default_factory=list)
    check_deleted: bool = False
    problem: tuple[str, str] | None = None  # (rule, detail): not run, it fails as it is


def kit(folder: Path = KIT) -> dict[str, nbformat.NotebookNode]:
    """The kit's exercise notebooks by name: those with task and check cells."""
    notebooks = {path.stem: nbformat.read(path, as_version=4) for path in sorted(folder.glob("[0-9]*.ipynb"))}
    return {name: nb for name, nb in notebooks.items() if _tagged(nb, "task") and _tagged(nb, "check")}


def read(path: Path, exercises: dict[str, nbformat.NotebookNode]) -> Submission:
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:  # not JSON, not a notebook: the teacher sees why, the others are still graded
        problem = (outcome.NOT_A_NOTEBOOK, f"{type(error).__name__}: {error}")
        return Submission(path, _learner({}, path, ""), "", problem=problem)
    meta = nb.metadata.get("flashsale", {}) if isinstance(nb.metadata.get("flashsale"), dict) else {}
    name = _exercise(nb, meta, path, exercises)
    who = _learner(meta, path, name)
    if not name:
        return Submission(path, who, "", problem=(outcome.NOT_AN_EXERCISE, "no exercise's goal in its metadata, "
                          f"number in its name or lab.start(…) in its cells: one of {', '.join(exercises)}"))
    wanted, code = _tagged(exercises[name], "task"), [c for c in nb.cells if c.cell_type == "code"]
    tasks = [c.source for c in _tagged(nb, "task")]
    if len(tasks) != len(wanted):
        tasks = []
        for task in wanted:
            names = defines(task.source)
            found = [c for c in code if defines(c.source) & names]
            if not found:
                missing = f"no cell defines {', '.join(sorted(names))}"
                return Submission(path, who, name, problem=(outcome.TASK_MISSING, missing))
            tasks.append(max(found, key=lambda c: (c.metadata.get("flashsale") == "task", code.index(c))).source)
    checks = {" ".join(c.source.split()) for c in _tagged(exercises[name], "check")}
    kept = _tagged(nb, "check") or [c for c in code if " ".join(c.source.split()) in checks]
    return Submission(path, who, name, tasks, check_deleted=not kept)


def plan(exercise: nbformat.NotebookNode, tasks: list[str]) -> list[Step]:
    """The kit's cells up to its last check, the learner's source in each task cell, probes around the check,
    then the kit's teardown (its last cell). The kit's cells after the check only show things: left out."""
    code = [c for c in exercise.cells if c.cell_type == "code"]
    kinds = [c.metadata.get("flashsale") for c in code]
    first, last = kinds.index("task"), len(kinds) - 1 - kinds[::-1].index("check")
    steps = [Step("setup", c.source, f"code cell {i + 1} (setup)") for i, c in enumerate(code[:first])]
    steps.append(_probe(prepare=True))
    mine = iter(tasks)
    for i, cell in enumerate(code[first:last + 1], start=first):
        if kinds[i] == "task":
            steps.append(Step("task", next(mine), f"task cell {kinds[:i + 1].count('task')}"))
        elif kinds[i] == "check":
            steps += [_probe(), Step("check", cell.source, "the Check cell"), _probe()]
        else:
            steps.append(Step("try", cell.source, f"code cell {i + 1} (a try-out of the task)"))
    return [*steps, Step("teardown", code[-1].source, "the teardown cell")]


def _probe(prepare: bool = False) -> Step:
    """A probe with a nonce of its own: the learner's code cannot know it before the probe runs (earlier
    probes' sources are in the kernel's history), so it cannot print a line the grader would take for it."""
    nonce = f"flashsale-grade-{secrets.token_hex(8)}:"
    return Step("probe", probe.cell(nonce, prepare), "the grader's probe", nonce)


def defines(source: str) -> set[str]:
    """The names a cell binds at its top level: `def f`, `f = …`, `import x as f`."""
    try:
        tree = ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {a.asname or a.name.split(".")[0] for a in node.names}
    return names


def _tagged(nb: nbformat.NotebookNode, kind: str) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("flashsale") == kind]


def _exercise(nb: nbformat.NotebookNode, meta: dict, path: Path, exercises: dict[str, nbformat.NotebookNode]) -> str:
    for name, kit_nb in exercises.items():
        if meta.get("goal") and meta.get("goal") == kit_nb.metadata.get("flashsale", {}).get("goal"):
            return name
    numbers = {name.split("-")[0]: name for name in exercises}
    named = {numbers[n] for n in re.findall(r"(?<!\d)(\d+)(?!\d)", path.stem) if n in numbers}
    if len(named) == 1:
        return named.pop()
    started = {m for c in nb.cells for m in re.findall(r"lab\.start\(\s*[\"'](\d+-[\w-]+)", c.source)}
    return next((name for name in exercises if name in started), "")


def _learner(meta: dict, path: Path, exercise: str) -> str:
    if isinstance(meta.get("learner"), str) and meta["learner"].strip():
        return meta["learner"].strip()
    rest = path.stem.replace(exercise, " ") if exercise else path.stem
    if exercise:
        rest = re.sub(rf"(?<!\d){exercise.split('-')[0]}(?!\d)", " ", rest)
    rest = re.sub(r"\(\d+\)", " ", rest).strip(" -_.")
    return rest or path.resolve().parent.name

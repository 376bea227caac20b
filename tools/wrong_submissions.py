"""Submitted notebooks for `flashsale grade`: one per wrong answer in the tests' registry, the solutions, the
student copies; and a verdict on the grades they got.

    python tools/wrong_submissions.py write OUT        # OUT/wrong/, OUT/solutions/, OUT/students/, OUT/expected.csv
    flashsale grade OUT --jobs 2 --csv OUT/grades.csv
    python tools/wrong_submissions.py verify OUT       # exit 1 unless each notebook got what it should

A wrong answer (`WRONG` in tests/integration/test_exercise_checks.py, docs in /work/notes/wrong-answers.md)
becomes its exercise's solution notebook with each task cell it binds replaced by an import of the wrong
answer from the test module (`from test_exercise_checks import X as task_name`); the tasks it leaves out keep
the solution's code. It must fail, naming rule `breaks`. A solution must pass; a student copy must fail, not
done. The learner column names each one: `wrong <name>`, `solution`, `student copy`.
"""
import copy
import csv
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests" / "integration"
SOLUTIONS, STUDENTS = ROOT / "notebooks" / "solutions", ROOT / "notebooks" / "exercises"
sys.path.insert(0, str(ROOT))
from flashsale.grade.submission import defines  # noqa: E402


def replaced(notebook: Path, sources: dict[str, str], learner: str) -> nbformat.NotebookNode:
    """`notebook` with each task cell that defines a name of `sources` holding that source instead."""
    nb = copy.deepcopy(nbformat.read(notebook, as_version=4))
    nb.metadata.setdefault("flashsale", {})["learner"] = learner
    tasks = [c for c in nb.cells if c.metadata.get("flashsale") == "task"]
    for name, source in sources.items():
        [cell] = [c for c in tasks if name in defines(c.source)]  # exactly one task cell defines each task name
        cell.source = source
    return nb


def bound(task: str, name: str) -> str:
    """A task cell that gives the notebook the test module's `name` as `task`."""
    return f"import sys\nsys.path.insert(0, {str(TESTS)!r})\nfrom test_exercise_checks import {name} as {task}"


def solution(exercise: str) -> Path:
    [path] = SOLUTIONS.glob(f"{exercise}-*.ipynb")
    return path


def write(out: Path) -> list[tuple[str, str, str]]:
    """Every submission, and (notebook, learner, what it must get) for each, also in OUT/expected.csv."""
    sys.path.insert(0, str(TESTS))
    import test_exercise_checks

    expected = []
    for folder in ("wrong", "solutions", "students"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for entry in getattr(test_exercise_checks, "WRONG", []):  # none before the registry lands
        path = out / "wrong" / f"{entry.exercise}-{entry.name}.ipynb"
        nb = replaced(solution(entry.exercise), {t: bound(t, n) for t, n in entry.binds.items()}, f"wrong {entry.name}")
        nbformat.write(nb, path)
        expected.append((str(path), f"wrong {entry.name}", f"rule {entry.breaks}"))
    for path in sorted(SOLUTIONS.glob("[0-9]*.ipynb")):
        for folder, source, learner, must in (("solutions", path, "solution", "passed"),
                                              ("students", STUDENTS / path.name, "student copy", "not done")):
            nbformat.write(replaced(source, {}, learner), out / folder / path.name)
            expected.append((str(out / folder / path.name), learner, must))
    with open(out / "expected.csv", "w", newline="") as file:
        csv.writer(file).writerows([("notebook", "learner", "must get"), *expected])
    return expected


def verify(out: Path, grades: Path) -> list[str]:
    """What went otherwise than expected.csv says, one line each."""
    with open(out / "expected.csv") as file:
        expected = {row["notebook"]: row["must get"] for row in csv.DictReader(file)}
    with open(grades) as file:
        got = {str(Path(row["notebook"]).resolve()): row for row in csv.DictReader(file)}
    wrong = []
    for notebook, must in expected.items():
        row = got.get(notebook)
        if row is None:
            wrong.append(f"{notebook}: not graded")
        elif must == "passed" and row["passed"] != "passed":
            wrong.append(f"{notebook}: must pass, got {row['rule']}: {row['detail']}")
        elif must == "not done" and (row["passed"] != "failed" or not row["rule"].startswith("not done")):
            wrong.append(f"{notebook}: must fail as not done, got {row['passed']} {row['rule']}")
        elif must.startswith("rule") and (row["passed"] != "failed" or not row["rule"].startswith(must + " (")):
            wrong.append(f"{notebook}: must fail with {must}, got {row['passed']} {row['rule']}: {row['detail']}")
    return wrong


if __name__ == "__main__":
    verb, out = sys.argv[1], Path(sys.argv[2]).resolve()
    if verb == "write":
        print(f"{len(write(out))} notebooks in {out}: flashsale grade {out} --csv {out / 'grades.csv'}")
    else:
        problems = verify(out, Path(sys.argv[3]) if len(sys.argv) > 3 else out / "grades.csv")
        print("\n".join(problems) or "every notebook got what it should")
        sys.exit(1 if problems else 0)

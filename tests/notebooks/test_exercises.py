"""The exercises: student copies up to date, every solution passes, every unsolved copy fails its check.

The notebooks run as the lessons do (test_notebooks.py), under `pytest --nbval-lax`, each against its
own embedded stack, and afterwards no process of its stack may be alive. To keep the run short, one
nbval session runs every solution while another runs every student copy (pytest's start-up alone costs
~15 s here), and each notebook is judged from its session's JUnit report.

A student copy must fail, and fail the right way: its check cell raises the stub's NotImplementedError
(or the check's AssertionError); nothing before the first task cell fails; every failing cell fails
with one of those two; and the teardown cell still runs. A check that cannot fail is a defect.

    pytest tests/notebooks/test_exercises.py    # about 4 minutes here
"""
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import nbformat
import pytest
from lab_processes import clean_up, ledger, survivors

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("[0-9][0-9]-*.ipynb"))
EXERCISES = ROOT / "notebooks" / "exercises"
ANSI = re.compile(r"(?:\x1b|#x1B)\[[0-9;]*m")
FAILED_AS = ("NotImplementedError", "AssertionError", "Wrong")


class Session:
    """One nbval run over several notebooks, started at once and waited for: its output, and per notebook, each
    code cell's failure (or None)."""

    def __init__(self, notebooks: list[Path], home: Path):
        self.notebooks, self.home, self.junit, self.left = notebooks, home, home / "junit.xml", {}
        home.mkdir(parents=True, exist_ok=True)
        self.output = (home / "nbval.out").open("w+")
        # An explicit --basetemp: a nested pytest would otherwise rotate the numbered temp dirs away, this
        # session's included, and with it the homes of its stacks.
        self.process = subprocess.Popen([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-cell-timeout=300",
                                         "-p", "no:cacheprovider", f"--basetemp={home / 'nbval'}", "-q",
                                         f"--junitxml={self.junit}", *map(str, notebooks)],
                                        cwd=ROOT, env={**os.environ, "FLASHSALE_HOME": str(home)},
                                        stdout=self.output, stderr=subprocess.STDOUT, text=True)
        self.cells: dict[str, dict[int, str | None]] = {}

    def wait(self) -> "Session":
        try:
            self.process.wait(timeout=1200)
        finally:
            self.process.kill()
            for notebook in self.notebooks:
                self.left[notebook.stem] = survivors(self.home / notebook.stem)
                clean_up(self.home / notebook.stem)
        for case in ElementTree.parse(self.junit).iter("testcase"):
            notebook = case.get("classname").rsplit(".", 2)[-2]
            failure = case.find("failure")
            self.cells.setdefault(notebook, {})[int(case.get("name").split()[-1])] = (
                None if failure is None else _exception(failure))
        return self

    def summary(self, notebook: Path) -> str:
        cells = self.cells.get(notebook.stem, {})
        failed = sum(error is not None for error in cells.values())
        return f"{failed} failed, {len(cells) - failed} passed" if failed else f"{len(cells)} passed"

    def failed(self, notebook: Path) -> dict[int, str]:
        return {cell: error for cell, error in self.cells.get(notebook.stem, {}).items() if error is not None}

    def log(self) -> str:
        self.output.seek(0)
        return self.output.read()[-8000:]

    def last_line(self) -> str:
        lines = self.log().strip().splitlines()
        return lines[-1] if lines else "(no output)"


def _exception(failure) -> str:
    """The name of the exception that failed a cell, from nbval's report of it."""
    text = ANSI.sub("", (failure.get("message") or "") + "\n" + (failure.text or ""))
    names = re.findall(r"^(\w+(?:Error|Exception|Wrong))\b:?", text, re.M)
    return names[-1] if names else text[-300:]


@pytest.fixture(scope="module")
def homes(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("exercises")


# Whose checks ask Redis alone (test_exercise_checks.BROKER_FREE, less 11, whose solution's order service then
# consumes): CI's Kafka pass leaves their solutions out, three stacks that would run the same again.
BROKER_FREE = {"10-idempotent-reservation", "12-per-user-limit", "16-stretch-shared-rate-limiter"}


def _solution(path: Path):
    return pytest.param(path, id=path.stem, marks=[pytest.mark.broker_free] if path.stem in BROKER_FREE else [])


def selected(request: pytest.FixtureRequest, test: str) -> list[Path]:
    """The notebooks of `test` that -m and -k left to run."""
    return [item.callspec.params["solution"] for item in request.session.items if item.originalname == test]


@pytest.fixture(scope="module")
def sessions(homes: Path, request: pytest.FixtureRequest) -> dict[str, Session]:
    """The solutions and the student copies, each in an nbval session of its own, both at once: a student copy's
    checks fail at once, so its session mostly waits for its stacks, and the two took 256 and 333 s one after the
    other in a CI rehearsal. Each has a home of its own: the same exercise's stacks run side by side."""
    kinds = {"solutions": selected(request, "test_the_solution_passes_its_check"),
             "exercises": [EXERCISES / s.name for s in selected(request, "test_the_unsolved_copy_fails_its_check")]}
    started = {kind: Session(notebooks, homes / kind) for kind, notebooks in kinds.items() if notebooks}
    return {kind: session.wait() for kind, session in started.items()}


@pytest.fixture(scope="module")
def solved(sessions: dict[str, Session]) -> Session:
    print(f"\nnbval, solutions: {sessions['solutions'].last_line()}")
    return sessions["solutions"]


@pytest.fixture(scope="module")
def unsolved(sessions: dict[str, Session]) -> Session:
    print(f"\nnbval, student copies: {sessions['exercises'].last_line()}")
    return sessions["exercises"]


@pytest.mark.broker_free
def test_student_copies_are_generated_from_the_solutions():
    check = subprocess.run([sys.executable, "tools/exercises.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert sorted(p.name for p in EXERCISES.glob("*.ipynb")) == [p.name for p in SOLUTIONS]


@pytest.mark.broker_free
def test_there_are_at_least_six_exercises_shaped_as_lessons():
    assert len(SOLUTIONS) >= 6
    for path in SOLUTIONS:
        cells = nbformat.read(path, as_version=4).cells
        code = [c.source for c in cells if c.cell_type == "code"]
        markdown = [c.source for c in cells if c.cell_type == "markdown"]
        assert any("**Goals" in s for s in markdown[:4]), f"{path.name}: goals at the top"
        assert sum("lab.start(" in s for s in code) == 1, f"{path.name}: one setup cell starts the stack"
        assert "lab.stop(stack)" in code[-1], f"{path.name}: the last cell stops the stack"
        assert any("<summary>Hint" in s for s in markdown), f"{path.name}: hints"


@pytest.mark.timeout(1300)
@pytest.mark.parametrize("solution", [_solution(path) for path in SOLUTIONS])
def test_the_solution_passes_its_check(solution: Path, solved: Session):
    print(f"solutions/{solution.name}: {solved.summary(solution)}")
    assert solution.stem in solved.cells, f"nbval did not run {solution.name}\n{solved.log()}"
    assert not solved.failed(solution), f"{solved.failed(solution)}\n{solved.log()}"
    assert ledger(solved.home / solution.stem), f"{solution.name} started no stack"
    assert solved.left[solution.stem] == [], f"{solution.name} left processes of its stack running"


@pytest.mark.broker_free
@pytest.mark.timeout(1300)
@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda path: path.stem)
def test_the_unsolved_copy_fails_its_check(solution: Path, unsolved: Session):
    exercise = EXERCISES / solution.name
    kinds = [c.metadata.get("flashsale") for c in nbformat.read(exercise, as_version=4).cells if c.cell_type == "code"]
    failed = unsolved.failed(exercise)
    print(f"exercises/{exercise.name}: {unsolved.summary(exercise)}")
    assert exercise.stem in unsolved.cells, f"nbval did not run {exercise.name}\n{unsolved.log()}"
    assert failed, f"the unsolved {exercise.name} passed: its check cannot fail"
    assert all(failed.get(i) in FAILED_AS for i, kind in enumerate(kinds) if kind == "check"), \
        f"every check cell must fail with {FAILED_AS}: {failed}"
    assert min(failed) > kinds.index("task"), f"a cell before the task failed: {failed}\n{unsolved.log()}"
    assert all(name in FAILED_AS for name in failed.values()), f"failed otherwise: {failed}\n{unsolved.log()}"
    assert len(kinds) - 1 not in failed, "the teardown cell must still run"
    assert unsolved.left[solution.stem] == [], f"{exercise.name} left processes of its stack running"

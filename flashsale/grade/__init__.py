"""`flashsale grade`: submitted exercise notebooks, each run against a fresh stack and the kit's own check.

    flashsale grade submissions/ --jobs 2 --csv grades.csv

Each notebook (a file, or every `*.ipynb` under a folder) is read (`submission.read`: learner, exercise,
task cells), planned (the kit's cells with the learner's task cells, `submission.plan`) and run in a
process of its own (`run.py`), N at a time, each with its own FLASHSALE_HOME in a fresh folder. One row
each: learner, exercise, passed or failed, the rule that failed, seconds (`outcome.Grade`).
"""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from flashsale.grade import outcome, submission
from flashsale.grade.cleanup import TEARDOWN_S, clean_up
from flashsale.grade.outcome import Grade

# A notebook's whole run, its stack's start included. Measured here with --jobs 2 while other sessions kept the
# load average at 20-39 on 2 cores: solutions 63-232 s (18, the slowest), student copies 126-398 s.
TIMEOUT_S = 600
BACKSTOP_S = 60 + TEARDOWN_S  # past the timeout, the worker itself is stopped: it must have hung


def notebooks(paths: Iterable[Path]) -> list[Path]:
    """The notebooks named, and those in the folders named, in order; Jupyter's checkpoints left out."""
    found: list[Path] = []
    for path in paths:
        inside = sorted(path.rglob("*.ipynb")) if path.is_dir() else [path]
        found += [p for p in inside if ".ipynb_checkpoints" not in p.parts and p not in found]
    return found


def grade_all(paths: list[Path], jobs: int = 1, timeout: float = TIMEOUT_S, kit: Path = submission.KIT,
              progress: Callable[[Grade], None] = lambda grade: None) -> list[Grade]:
    """Grade every notebook under `paths`, `jobs` at a time; the rows in the order of the notebooks."""
    exercises = submission.kit(kit)
    if not exercises:
        raise FileNotFoundError(f"no exercise notebooks in {kit}: grade from a clone of the kit")
    work = Path(tempfile.mkdtemp(prefix="flashsale-grade-"))
    try:
        def one(index_path: tuple[int, Path]) -> Grade:
            index, path = index_path
            grade = grade_one(submission.read(path, exercises), exercises, work / str(index), timeout)
            progress(grade)
            return grade
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            return list(pool.map(one, enumerate(notebooks(paths))))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def grade_one(sub: submission.Submission, exercises: dict, home: Path, timeout: float) -> Grade:
    if sub.problem:
        rule, detail = sub.problem
        return Grade(sub.learner, sub.exercise, False, rule, 0.0, detail, str(sub.path))
    grade = _run(sub, exercises, home, timeout)
    if grade.rule == outcome.GRADER:  # the kit's own setup failed, before any of the learner's code ran: once more
        first = grade.detail  # (of 18 notebooks here one found PostgreSQL's free port taken by the time it bound it)
        again = _run(sub, exercises, home.with_name(f"{home.name}-again"), timeout)
        again.seconds += grade.seconds
        grade, grade.detail = again, outcome.first_line(f"{again.detail} (graded twice; the first try: {first})")
    if sub.check_deleted:
        said = "passed" if grade.passed else f"said {grade.rule}: {grade.detail}"
        grade.passed, grade.rule = False, outcome.CHECK_DELETED
        grade.detail = f"the notebook has no Check cell; the kit's check, run anyway, {said}"
    return grade


def _run(sub: submission.Submission, exercises: dict, home: Path, timeout: float) -> Grade:
    """One run of the notebook by a worker process; the row it gets."""
    grade = Grade(sub.learner, sub.exercise, False, "", 0.0, notebook=str(sub.path))
    steps = submission.plan(exercises[sub.exercise], sub.tasks)
    home.mkdir(parents=True)
    job, result = home.with_suffix(".job.json"), home.with_suffix(".result.json")
    job.write_text(json.dumps({"home": str(home), "timeout": timeout, "steps": [step.__dict__ for step in steps]}))
    started = time.monotonic()
    with open(home.with_suffix(".log"), "w") as log:
        worker = subprocess.Popen([sys.executable, "-m", "flashsale.grade.run", str(job), str(result)],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            worker.wait(timeout + BACKSTOP_S)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
            grade.rule, grade.detail = outcome.TIMED_OUT, f"the grader's worker ran on {BACKSTOP_S} s past the timeout"
        finally:
            clean_up(home)
    grade.seconds = time.monotonic() - started
    if result.exists() and not grade.rule:
        said = json.loads(result.read_text())
        grade.passed, grade.rule, grade.detail = said["passed"], said["rule"], said["detail"]
    elif not grade.rule:
        grade.rule, grade.detail = outcome.GRADER, outcome.first_line(
            f"the grader's worker stopped (exit {worker.returncode}): {home.with_suffix('.log').read_text()[-500:]}",
            tail=True)
    return grade


def main(paths: list[Path], csv_file: Path | None, jobs: int, timeout: float) -> list[Grade]:
    """The command: a line on stderr as each notebook is graded, then the table (whole, in a log), the CSV."""
    grades = grade_all(paths, jobs, timeout, progress=lambda g: print(
        f"{g.learner}, {g.exercise or '?'}: {'passed' if g.passed else 'failed'} ({g.seconds:.0f} s)", file=sys.stderr))
    Console(width=None if sys.stdout.isatty() else 1000).print(table(grades))
    if csv_file:
        write_csv(grades, csv_file)
    return grades


def table(grades: list[Grade]) -> Table:
    """The teacher's table: the CSV's columns but the notebook's path."""
    shown = Table(*(c.replace("passed", "result") for c in outcome.COLUMNS[:-1]), title="flashsale grade")
    for grade in grades:  # Text, not markup: a learner's message may hold [brackets]
        cells = [Text(cell) for cell in grade.row()[:-1]]
        cells[2].stylize("green" if grade.passed else "red")
        shown.add_row(*cells)
    return shown


def write_csv(grades: list[Grade], path: Path) -> None:
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(outcome.COLUMNS)
        writer.writerows(grade.row() for grade in grades)

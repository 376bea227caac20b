"""`flashsale grade` grades a small class: each way a submission can end, once, by the real command.

Seven submissions of exercise 10, two at a time, each against a stack of its own: a solution, a student copy,
a wrong answer, a kernel that dies, a check that hangs (a short timeout), a Check cell deleted, and a task
cell that edits the kit's check. Exercise 10 needs Redis alone: the broker under it changes nothing, so the
Kafka pass leaves it out. About 4 minutes here: the hang holds one slot for its whole timeout.
"""
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import psutil
import pytest

from flashsale.grade import BACKSTOP_S, outcome

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from wrong_submissions import bound, replaced, solution  # noqa: E402

SOLUTION = solution("10")
STUDENT = ROOT / "notebooks" / "exercises" / SOLUTION.name
TIMEOUT_S = 150  # a solution took 40-100 s here beside a second job; the hang waits all of it
SEED = '''def reserve_script():
    return """
local left = redis.call('DECRBY', KEYS[1], ARGV[2])
if left < 0 then redis.call('INCRBY', KEYS[1], ARGV[2]); return {'SOLD_OUT', left + tonumber(ARGV[2])} end
return {'RESERVED', left}
"""'''
pytestmark = [pytest.mark.broker_free, pytest.mark.timeout(1200)]


def wrong_answer() -> tuple[str, str]:
    """A wrong answer to exercise 10 (task source, what the rule column must start with): the tests' registry's
    first, as `flashsale grade` gets them from tools/wrong_submissions.py, or, before the registry exists,
    the seed's DECR-then-INCR, which its check rejects with or without a rule named."""
    import test_exercise_checks

    for entry in getattr(test_exercise_checks, "WRONG", []):
        if entry.exercise == "10":
            [(task, name)] = entry.binds.items()
            return bound(task, name), f"rule {entry.breaks} ("
    return SEED, ""


@pytest.fixture(scope="module")
def graded():
    """The class graded once: (rows of the CSV by learner, the printed table's rows, the CSV's rows, processes
    left behind). Not under pytest's basetemp: another pytest session makes /tmp/pytest-of-root private again
    (0700), and PostgreSQL, which runs as a user of its own under root, then cannot reach its data (two of seven
    stacks here failed initdb with 'Permission denied' while another session ran)."""
    base = Path(tempfile.mkdtemp(prefix="flashsale-grade-tests-"))
    folder, work = base / "class", base / "work"
    folder.mkdir(), work.mkdir()
    wrong, _ = wrong_answer()
    tamper = "reservation.check = lambda *args: print('All checks passed')\ndef reserve_script():\n    return ''"
    submissions = {  # the hang first: it holds one of the two slots while the others run in the other
        "hang": replaced(SOLUTION, {"reserve_script": "def reserve_script():\n    import time\n    time.sleep(3600)"},
                         "hang"),
        "solution": replaced(SOLUTION, {}, "solution"),
        "student": replaced(STUDENT, {}, "student"),
        "wrong": replaced(SOLUTION, {"reserve_script": wrong}, "wrong"),
        "crash": replaced(SOLUTION, {"reserve_script": "def reserve_script():\n    import os\n    os._exit(3)"},
                          "crash"),
        "no-check": replaced(SOLUTION, {}, "no-check"),
        "tamper": replaced(STUDENT, {"reserve_script": tamper}, "tamper"),
    }
    submissions["no-check"].cells = [c for c in submissions["no-check"].cells if c.metadata.get("flashsale") != "check"]
    for i, (name, nb) in enumerate(submissions.items()):
        nbformat.write(nb, folder / f"{i}-{name}.ipynb")
    table = folder / "grades.csv"
    run = subprocess.run([sys.executable, "-m", "flashsale.cli", "grade", str(folder), "--jobs", "2",
                          "--timeout", str(TIMEOUT_S), "--csv", str(table)],
                         env={**os.environ, "TMPDIR": str(work)}, capture_output=True, text=True, timeout=1100)
    assert run.returncode == 0, run.stderr[-3000:]
    with open(table) as file:
        rows = list(csv.DictReader(file))
    printed = [[cell.strip() for cell in line[1:-1].split(line[0])] for line in run.stdout.splitlines()
               if line[:1] in ("┃", "│")]  # the header's rule, then the rows'; no cell wraps in a log
    yield {row["learner"]: row for row in rows}, printed, rows, _left(work)
    shutil.rmtree(base, ignore_errors=True)


def _left(work: Path) -> list[str]:
    found = []
    for process in psutil.process_iter(["cmdline", "environ", "status"]):
        texts = [*(process.info["cmdline"] or []), *(process.info["environ"] or {}).values()]
        if any(str(work) in text for text in texts) and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(f"{process.pid} {' '.join(process.info['cmdline'] or [])[:120]}")
    return found


def test_the_solution_passes(graded):
    row = graded[0]["solution"]
    assert (row["passed"], row["rule"], row["exercise"]) == ("passed", "", "10-idempotent-reservation"), row["detail"]


def test_the_student_copy_fails_as_not_done(graded):
    row = graded[0]["student"]
    assert (row["passed"], row["rule"]) == ("failed", outcome.NOT_DONE), row["detail"]


def test_a_wrong_answer_fails_and_names_the_rule_it_breaks(graded):
    row, (_, rule) = graded[0]["wrong"], wrong_answer()
    assert row["passed"] == "failed" and row["rule"].startswith(rule), row["detail"]
    # no registry yet: the check's own words, as it names no rule
    assert rule or "remember each orderId's decision" in row["detail"], row["detail"]


def test_a_kernel_that_dies_fails_as_a_crash(graded):
    row = graded[0]["crash"]
    assert (row["passed"], row["rule"]) == ("failed", outcome.DIED), row["detail"]
    assert re.match(r"in code cell \d+ \(a try-out of the task\)", row["detail"]), row["detail"]  # the first to call it


def test_a_check_that_hangs_fails_when_its_time_is_up(graded):
    row = graded[0]["hang"]
    assert (row["passed"], row["rule"]) == ("failed", outcome.TIMED_OUT), row["detail"]
    assert "(a try-out of the task) still ran after" in row["detail"], row["detail"]
    assert TIMEOUT_S <= float(row["seconds"]) < TIMEOUT_S + BACKSTOP_S, row["detail"]  # not the backstop


def test_a_right_answer_without_its_check_cell_fails(graded):
    row = graded[0]["no-check"]
    assert (row["passed"], row["rule"]) == ("failed", outcome.CHECK_DELETED), row["detail"]
    assert row["detail"].endswith("the kit's check, run anyway, passed"), row["detail"]


def test_a_task_cell_that_replaces_the_kits_check_fails(graded):
    row = graded[0]["tamper"]
    assert (row["passed"], row["rule"]) == ("failed", outcome.KIT_CHANGED), row["detail"]
    assert "flashsale.lab.exercises.reservation.check" in row["detail"], row["detail"]


def test_the_csv_holds_the_printed_table(graded):
    _, printed, rows, _ = graded
    assert printed[0] == ["learner", "exercise", "result", "rule", "seconds", "detail"]
    assert printed[1:] == [[row[c] for c in outcome.COLUMNS[:-1]] for row in rows]
    assert [Path(row["notebook"]).name.split("-", 1)[1] for row in rows] == [
        "hang.ipynb", "solution.ipynb", "student.ipynb", "wrong.ipynb", "crash.ipynb", "no-check.ipynb",
        "tamper.ipynb"]


def test_no_process_of_any_graded_notebook_is_left(graded):
    assert graded[3] == []

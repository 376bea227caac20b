"""`flashsale grade`'s logic without a kernel: which exercise and learner a notebook is, which cells are the
learner's, what runs, what a failure says, and that the probe sees the kit changed (and nothing else)."""
import sys
import types
from pathlib import Path

import nbformat
import pytest

import flashsale.grade as grading
import flashsale.lab.exercises as exercises
from flashsale.grade import outcome, probe, submission
from flashsale.lab.exercises import Rule, Wrong, reservation

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from wrong_submissions import replaced  # noqa: E402

KIT = submission.kit()
SOLUTION = ROOT / "notebooks" / "solutions" / "10-idempotent-reservation.ipynb"
STUDENT = ROOT / "notebooks" / "exercises" / "10-idempotent-reservation.ipynb"
RENAME = ROOT / "notebooks" / "solutions" / "17-rename-a-field.ipynb"


def saved(nb, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def task_sources(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, 4).cells if c.metadata.get("flashsale") == "task"]


def test_the_kit_has_every_exercise_from_10_to_18():
    assert [name[:2] for name in KIT] == [str(n) for n in range(10, 19)]


def test_a_notebook_is_its_exercise_by_its_goal_whatever_its_file_is_called(tmp_path):
    read = submission.read(saved(nbformat.read(SOLUTION, 4), tmp_path, "homework.ipynb"), KIT)
    assert (read.exercise, read.learner, read.problem) == ("10-idempotent-reservation", "homework", None)


def test_without_its_goal_the_number_in_the_file_name_names_the_exercise(tmp_path):
    nb = nbformat.read(RENAME, 4)
    del nb.metadata["flashsale"]
    read = submission.read(saved(nb, tmp_path, "alice_17.ipynb"), KIT)
    assert (read.exercise, read.learner) == ("17-rename-a-field", "alice")


def test_without_goal_or_number_the_setup_cells_lab_start_names_the_exercise(tmp_path):
    nb = nbformat.read(SOLUTION, 4)
    del nb.metadata["flashsale"]
    assert submission.read(saved(nb, tmp_path, "bob.ipynb"), KIT).exercise == "10-idempotent-reservation"


def test_the_learner_is_the_notebooks_metadata_then_the_file_name_then_the_folder(tmp_path):
    named = replaced(SOLUTION, {}, "Ada Lovelace")
    assert submission.read(saved(named, tmp_path, "x-10.ipynb"), KIT).learner == "Ada Lovelace"
    plain = nbformat.read(SOLUTION, 4)
    assert submission.read(saved(plain, tmp_path, "carol-10-idempotent-reservation (1).ipynb"), KIT).learner == "carol"
    assert submission.read(saved(plain, tmp_path, "dave/10-idempotent-reservation.ipynb"), KIT).learner == "dave"


def test_the_task_cells_are_the_submissions_and_every_other_cell_is_the_kits(tmp_path):
    nb = nbformat.read(SOLUTION, 4)
    check = next(c for c in nb.cells if c.metadata.get("flashsale") == "check")
    check.source = "print('All checks passed')"  # an edited Check cell grades nothing
    nb.cells.insert(3, nbformat.v4.new_code_cell("reservation.check = None"))  # nor does a cell of the learner's
    read = submission.read(saved(nb, tmp_path, "eve-10.ipynb"), KIT)
    steps = submission.plan(KIT[read.exercise], read.tasks)
    kit_code = [c for c in KIT[read.exercise].cells if c.cell_type == "code"]
    kinds = [c.metadata.get("flashsale") for c in kit_code]
    task, check = kinds.index("task"), kinds.index("check")
    assert [s.source for s in steps if s.kind == "setup"] == [c.source for c in kit_code[:task]]
    assert [s.source for s in steps if s.kind == "task"] == task_sources(SOLUTION)
    assert [s.source for s in steps if s.kind == "try"] == [c.source for c in kit_code[task + 1:check]]
    assert [(s.kind, s.source) for s in steps[-4:]] == [
        ("probe", steps[-4].source), ("check", kit_code[check].source), ("probe", steps[-2].source),
        ("teardown", kit_code[-1].source)]  # the kit's cells between its check and its teardown only show things
    assert not read.check_deleted


def test_a_notebook_whose_tags_were_stripped_keeps_its_task_and_check_cells_by_name_and_source(tmp_path):
    nb = nbformat.read(RENAME, 4)
    for cell in nb.cells:
        cell.metadata = {}
    read = submission.read(saved(nb, tmp_path, "frank-17.ipynb"), KIT)
    assert read.tasks == task_sources(RENAME) and not read.check_deleted and read.problem is None


def test_a_task_cell_deleted_fails_the_notebook_before_it_runs(tmp_path):
    nb = nbformat.read(RENAME, 4)
    nb.cells = [c for c in nb.cells if "def to_wire" not in c.source]
    read = submission.read(saved(nb, tmp_path, "grace-17.ipynb"), KIT)
    assert read.problem == (outcome.TASK_MISSING, "no cell defines to_wire")


def test_a_check_cell_deleted_is_noticed_and_the_kits_check_still_runs(tmp_path):
    nb = nbformat.read(SOLUTION, 4)
    nb.cells = [c for c in nb.cells if c.metadata.get("flashsale") != "check"]
    read = submission.read(saved(nb, tmp_path, "heidi-10.ipynb"), KIT)
    assert read.check_deleted
    assert "check" in [s.kind for s in submission.plan(KIT[read.exercise], read.tasks)]


def test_a_file_that_is_not_a_notebook_or_not_an_exercise_fails_clearly(tmp_path):
    (tmp_path / "ivan-10.ipynb").write_text("{not json")
    assert submission.read(tmp_path / "ivan-10.ipynb", KIT).problem[0] == outcome.NOT_A_NOTEBOOK
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    assert submission.read(saved(nb, tmp_path, "judy.ipynb"), KIT).problem[0] == outcome.NOT_AN_EXERCISE


def test_a_checks_failure_is_named_by_its_rule_even_when_the_rule_holds_parentheses():
    rule = Rule(2, "never below zero (even for 2 when 1 is left)")
    wrong = Wrong("stock went below zero", rule)
    assert outcome.failed("Wrong", str(wrong), "the Check cell", (str(rule),)) == (str(rule), "stock went below zero")
    assert outcome.failed("Wrong", "rule 3 (remember): twice", "the Check cell") == ("rule 3 (remember)", "twice")


def test_each_other_way_of_failing_says_what_it_is():
    assert outcome.failed("AssertionError", "it sold 101", "the Check cell") == (outcome.NO_RULE, "it sold 101")
    assert outcome.failed("NotImplementedError", "your code here", "the Check cell")[0] == outcome.NOT_DONE
    assert outcome.failed("ZeroDivisionError", "division by zero", "task cell 1") == (
        "crashed: ZeroDivisionError", "task cell 1: ZeroDivisionError: division by zero")


@pytest.fixture(scope="module")
def before() -> dict[str, str]:
    return probe.fingerprint(prepare=True, namespace={"reservation": reservation})


def test_the_probe_sees_nothing_when_nothing_changed(before):
    assert probe.changes(before, probe.fingerprint(namespace={"reservation": reservation, "mine": 1})) == []


@pytest.mark.parametrize("tamper, named", [
    (lambda m: m.setattr(reservation, "check", lambda *a: None), "flashsale.lab.exercises.reservation.check"),
    (lambda m: m.setattr(exercises, "expect", lambda *a, **k: None), "flashsale.lab.exercises.expect"),
    (lambda m: m.setattr(reservation, "expect", lambda *a, **k: None), "flashsale.lab.exercises.reservation.expect"),
    (lambda m: m.setattr(reservation.check, "__code__", (lambda stack, lua: None).__code__),
     "flashsale.lab.exercises.reservation.check"),
    (lambda m: m.setattr(Wrong, "__init__", lambda self, *a, **k: None), "flashsale.lab.exercises.Wrong.__init__"),
    (lambda m: m.setattr(reservation, "len", lambda x: 0, raising=False), "flashsale.lab.exercises.reservation.len"),
    (lambda m: m.setattr("builtins.sum", lambda *a: 0), "builtins.sum"),
    (lambda m: m.setitem(sys.modules, "flashsale.lab.exercises.reservation", types.ModuleType("fake")),
     "module flashsale.lab.exercises.reservation"),
], ids=["the-check", "a-helper", "a-helper-as-imported", "the-checks-code", "a-method", "a-shadowed-builtin",
        "a-builtin", "the-module"])
def test_the_probe_names_what_the_learners_code_changed_in_the_kit(before, monkeypatch, tamper, named):
    tamper(monkeypatch)
    assert named in probe.changes(before, probe.fingerprint(namespace={"reservation": reservation}))


class Finder:
    def find_spec(self, name: str, path: object, target: object = None) -> None:
        return None


def test_the_probe_names_a_finder_put_ahead_of_the_kits_and_not_one_appended_after_it(before, monkeypatch):
    """A finder ahead of the kit's could hand out a module of its own for the check; six appends one on import."""
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder()])
    assert probe.changes(before, probe.fingerprint(namespace={"reservation": reservation})) == []
    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])
    assert "sys.meta_path" in probe.changes(before, probe.fingerprint(namespace={"reservation": reservation}))


def test_the_probe_sees_the_notebooks_own_name_for_the_check_rebound(before):
    class Fake:
        check = staticmethod(lambda *a: None)
    assert probe.changes(before, probe.fingerprint(namespace={"reservation": Fake})) == ["the notebook's reservation"]


def test_the_probe_cell_leaves_no_name_in_the_notebook():
    namespace = {"get_ipython": lambda: None}
    exec(probe.cell("nonce:").replace("get_ipython().user_ns", "{}"), namespace)
    assert [name for name in namespace if not name.startswith("__")] == ["get_ipython"]


def test_a_probes_output_forged_beside_the_real_one_is_no_fingerprint():
    assert probe.read("n:", 'n:{"a": "1"}\n') == {"a": "1"}
    assert probe.read("n:", 'n:{"a": "1"}\nn:{"a": "2"}\n') is None
    assert probe.read("n:", "nothing\n") is None


def runs(monkeypatch, *results: tuple[bool, str]) -> list[Path]:
    """grade_one's runs replaced by these results, in turn; the homes it ran in."""
    homes, left = [], list(results)

    def run(sub, exercises, home, timeout):
        homes.append(home)
        passed, rule = left.pop(0)
        return outcome.Grade(sub.learner, sub.exercise, passed, rule, 10.0, "said so", str(sub.path))
    monkeypatch.setattr(grading, "_run", run)
    return homes


def test_a_notebook_whose_kit_setup_failed_is_graded_once_more_in_a_fresh_home(monkeypatch, tmp_path):
    homes = runs(monkeypatch, (False, outcome.GRADER), (True, ""))
    read = submission.read(SOLUTION, KIT)
    grade = grading.grade_one(read, KIT, tmp_path / "0", 600)
    assert (grade.passed, grade.seconds, len(set(homes))) == (True, 20.0, 2)
    assert "graded twice; the first try: said so" in grade.detail


def test_a_learners_failure_is_graded_once(monkeypatch, tmp_path):
    homes = runs(monkeypatch, (False, outcome.TIMED_OUT), (True, ""))
    assert grading.grade_one(submission.read(STUDENT, KIT), KIT, tmp_path / "0", 600).rule == outcome.TIMED_OUT
    assert len(homes) == 1


def test_a_right_answer_without_its_check_cell_fails_and_says_what_the_kits_check_said(monkeypatch, tmp_path):
    runs(monkeypatch, (True, ""))
    nb = nbformat.read(SOLUTION, 4)
    nb.cells = [c for c in nb.cells if c.metadata.get("flashsale") != "check"]
    grade = grading.grade_one(submission.read(saved(nb, tmp_path, "kim-10.ipynb"), KIT), KIT, tmp_path / "0", 600)
    assert (grade.passed, grade.rule) == (False, outcome.CHECK_DELETED)
    assert grade.detail.endswith("the kit's check, run anyway, passed")

"""The notebooks as committed: tidy (generated navigation up to date, no stray outputs), and shaped like lessons."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))

pytestmark = pytest.mark.broker_free  # the same on either broker: CI's tansu pass runs it


def test_there_are_ten_notebooks():
    assert [path.name[:2] for path in NOTEBOOKS] == ["00", "01", "02", "03", "04", "05", "06", "07", "08", "09"]


def test_navigation_and_outputs_are_as_the_tool_writes_them():
    check = subprocess.run([sys.executable, "tools/notebooks.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_each_notebook_is_a_lesson(path: Path):
    cells = nbformat.read(path, as_version=4).cells
    markdown = [c.source for c in cells if c.cell_type == "markdown"]
    code = [c.source for c in cells if c.cell_type == "code"]
    # 60: the lessons grew a payment saga, outage and stall sections and a prediction before each key run;
    # past that a lesson should be split in two.
    assert 15 <= len(cells) <= 60
    assert sum(len(s.split()) for s in markdown) > 3 * sum(len(s.split()) for s in code), "more prose than code"
    assert "**Goals" in markdown[1], "goals at the top, right after the navigation"
    assert sum("lab.start(" in s for s in code) == 1, "one setup cell"
    assert "lab.stop(stack)" in code[-1], "a teardown cell at the end"
    assert any("## Summary" in s for s in markdown[-3:]), "a summary at the end"
    assert max(len(s.splitlines()) for s in code) <= 8, "short cells: helpers live in flashsale.lab"


@pytest.mark.parametrize("path", [*NOTEBOOKS, *sorted((ROOT / "notebooks").glob("*/[0-9][0-9]-*.ipynb"))],
                         ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_every_link_of_the_navigation_leads_to_a_file_that_exists(path: Path):
    import re

    navigation = [c.source for c in nbformat.read(path, as_version=4).cells if c.metadata.get("flashsale") == "nav"]
    links = [link.split("#")[0] for text in navigation for link in re.findall(r"\]\(([^)]+)\)", text)]
    assert links and all((path.parent / link).exists() for link in links), links


def minutes_model():
    spec = importlib.util.spec_from_file_location("notebooks_tool", ROOT / "tools" / "notebooks.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    lessons = {path.stem: tool.minutes(nbformat.read(path, as_version=4), path.stem) for path in NOTEBOOKS}
    return tool, lessons, tool.exercise_minutes()


def test_the_readme_gives_each_lesson_and_exercise_the_minutes_the_model_computes_alone_and_in_a_room():
    readme = (ROOT / "README.md").read_text()
    _, lessons, exercises = minutes_model()
    for stem, m in lessons.items():
        assert re.search(rf"^\| `{stem}` \|.*\| {m.alone} \| {m.room} \|$", readme, re.M), f"README: {stem} takes {m}"
    for stem, m in exercises.items():
        assert re.search(rf"^\| {stem} \|.*\| {m.alone} \| {m.room} \|$", readme, re.M), f"README: {stem} takes {m}"
    for label, group in (("the whole lab", lessons), ("every exercise", exercises)):
        alone, room = sum(m.alone for m in group.values()), sum(m.room for m in group.values())
        assert re.search(rf"^\| \| {label} .*\| {alone} \| {room} \|$", readme, re.M), f"README: {label}"


def test_the_teaching_plans_brackets_are_the_models_minutes():
    plans = (ROOT / "docs" / "teaching.md").read_text()
    _, lessons, exercises = minutes_model()
    named = {name[:2]: m for name, m in {**lessons, **exercises}.items()}
    brackets = re.findall(r"`(\d\d)(?:-[a-z-]+)?` \((\d+) min (in a room|alone)\)", plans)
    assert len(brackets) >= 5, "the plans name their notebooks' minutes in brackets"
    for number, minutes, who in brackets:
        assert int(minutes) == (named[number].room if who == "in a room" else named[number].alone), (number, who)


def test_the_90_minute_plan_adds_up_and_gives_what_it_does_whole_the_minutes_it_takes():
    plans = (ROOT / "docs" / "teaching.md").read_text()
    plan = plans.split("## The 90-minute workshop")[1].split("\n\n", 2)[1]
    rows = re.findall(r"^\| (\d+)–(\d+) \| [^|]+ \| (.*) \|$", plan, re.M)
    assert rows[0][0] == "0" and rows[-1][1] == "90"
    assert all(this[1] == following[0] for this, following in zip(rows, rows[1:], strict=False)), "slots in a row"
    for start, end, how in rows:
        for minutes in re.findall(r"all of it \(`\d\d` \((\d+) min in a room\)\)", how):
            assert int(end) - int(start) >= int(minutes), f"{start}–{end}: a whole notebook of {minutes} min"

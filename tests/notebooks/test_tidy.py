"""The notebooks as committed: tidy (generated navigation up to date, no stray outputs), and shaped like lessons."""
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


def test_the_readme_gives_each_lesson_the_minutes_the_tool_computes_for_it():
    readme = (ROOT / "README.md").read_text()
    computed = {path.stem: nbformat.read(path, as_version=4).metadata["flashsale"]["minutes"] for path in NOTEBOOKS}
    for stem, minutes in computed.items():
        assert re.search(rf"^\| `{stem}` \|.*\| {minutes} \|$", readme, re.M), f"README: {stem} takes {minutes} min"
    assert re.search(rf"^\| \| the whole lab \| {sum(computed.values())} \|$", readme, re.M)

"""tools/exercises.py: what a student copy is made of, and that --check notices a stale one."""
import importlib.util
import shutil
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("exercises_tool", ROOT / "tools" / "exercises.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)

TASK = '''def reserve(redis, order_id):
    """Reserve once."""
    ### BEGIN SOLUTION
    return redis.hsetnx("decisions", order_id, "RESERVED")
    ### END SOLUTION


def helper():
    return 42'''


def test_a_solution_region_becomes_a_stub_indented_like_its_markers():
    copy = tool.strip(TASK)
    assert "hsetnx" not in copy and "BEGIN SOLUTION" not in copy
    assert '    raise NotImplementedError("your code here' in copy
    assert copy.startswith('def reserve(redis, order_id):\n    """Reserve once."""\n    # YOUR CODE HERE')
    assert copy.endswith("def helper():\n    return 42"), "code outside the region stays"
    markdown = "Why?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION"
    assert tool.strip(markdown, markdown=True) == "Why?\n*Your answer here.*"  # noqa: B005 (the tool's strip)


def notebook(*cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    for kind, source in cells:
        cell = nbformat.v4.new_markdown_cell(source) if kind == "md" else nbformat.v4.new_code_cell(source)
        if kind in ("task", "check"):
            cell.metadata["flashsale"] = kind
        nb.cells.append(cell)
    return nb


@pytest.mark.parametrize("cells, problem", [
    ([("code", "x = 1")], "needs a task cell and a check cell"),
    ([("task", "def f():\n    ### BEGIN SOLUTION\n    return 1\n"), ("check", "f()")], "without its END"),
    ([("task", "### BEGIN SOLUTION\nx = 1\n### END SOLUTION"), ("check", "x")], "at the top level"),
    ([("task", TASK), ("code", TASK), ("check", "reserve(r, 'a')")], "outside a task cell"),
], ids=["no-task", "unbalanced", "top-level", "outside-task"])
def test_problems_a_solution_can_have(cells, problem):
    assert any(problem in p for p in tool.problems(notebook(*cells), Path("99-x.ipynb")))


def test_check_fails_on_a_stale_copy_and_the_tool_mends_it(tmp_path, monkeypatch):
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    solutions.mkdir()
    exercises.mkdir()
    shutil.copy(ROOT / "notebooks" / "solutions" / "13-poison-message.ipynb", solutions)
    monkeypatch.setattr(tool, "SOLUTIONS", solutions)
    monkeypatch.setattr(tool, "EXERCISES", exercises)
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    assert tool.main(check=True) == 1, "no student copy yet"
    assert tool.main(check=False) == 0 and tool.main(check=True) == 0
    copy = nbformat.read(exercises / "13-poison-message.ipynb", as_version=4)
    task = next(c for c in copy.cells if c.metadata.get("flashsale") == "task")
    assert "NotImplementedError" in task.source and "model_validate_json" not in task.source
    assert not any(c.metadata.get("flashsale") == "banner" for c in copy.cells)

    task.source += "\n# a learner's edit in the generated copy"
    nbformat.write(copy, exercises / "13-poison-message.ipynb")
    assert tool.main(check=True) == 1, "a hand-edited copy is stale"
    (exercises / "99-orphan.ipynb").write_text("{}")
    tool.main(check=False)
    assert tool.main(check=True) == 0 and not (exercises / "99-orphan.ipynb").exists()

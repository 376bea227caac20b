"""tools/notebooks.py's minutes: prose at 110 words a minute, code at 8 lines a minute with what `lab.show` prints,
the measured run, 2 minutes a prediction alone and 4 in a room; an exercise also writes its solution and runs its
check twice. And the README and teaching notes are rewritten to match, never left behind."""
import importlib.util
import inspect
import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))  # tools/notebooks.py imports its neighbour stability.py for --time
spec = importlib.util.spec_from_file_location("notebooks_tool", ROOT / "tools" / "notebooks.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


@pytest.fixture
def measured(tmp_path, monkeypatch):
    """A runs.json of our own: name -> seconds."""
    def write(**seconds):
        path = tmp_path / "runs.json"
        path.write_text(json.dumps({name.replace("_", "-"): {"seconds": s} for name, s in seconds.items()}))
        monkeypatch.setattr(tool, "RUNS", path)
    return write


def notebook(*cells: tuple[str, str]):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(s) if kind == "md" else nbformat.v4.new_code_cell(s) for kind, s in cells]
    return nb


def test_prose_is_read_at_110_words_a_minute_and_rounded_up_to_five(measured):
    measured(lesson=0)
    assert tool.minutes(notebook(("md", "word " * 1100)), "lesson") == tool.Minutes(10, 10)
    assert tool.minutes(notebook(("md", "word " * 1101)), "lesson") == tool.Minutes(15, 15)


def test_the_measured_run_counts_whole(measured):
    measured(lesson=9 * 60 + 1)
    assert tool.minutes(notebook(("md", "")), "lesson") == tool.Minutes(10, 10)


def test_a_prediction_takes_two_minutes_alone_and_four_in_a_room(measured):
    measured(lesson=0)
    cells = [("md", "word " * 330), ("md", tool.PREDICTION + "\n\nA or B?")]  # 3 min and a few words
    assert tool.minutes(notebook(*cells), "lesson") == tool.Minutes(10, 10)
    two = [*cells, ("md", tool.PREDICTION)]
    assert tool.minutes(notebook(*two), "lesson") == tool.Minutes(10, 15)  # 3 + 4 = 7 -> 10; 3 + 8 = 11 -> 15


def test_code_is_read_at_eight_lines_a_minute_with_every_line_lab_show_prints(measured):
    measured(lesson=0)
    source = len(inspect.getsource(tool.shown_lines).splitlines())
    shown = notebook(("code", "import notebooks_tool as tools_module\nfrom flashsale import lab"),
                     ("code", "lab.show(tools_module.shown_lines)"))
    sys.modules["notebooks_tool"] = tool
    assert tool.reading(shown) == (0, 3 + source, 0)


def test_lab_show_of_text_counts_its_lines_and_of_a_name_the_notebook_defines_nothing_more():
    cells = ["from flashsale import lab\nfrom flashsale.rules import reservation",
             'lab.show(reservation.RESERVE_LUA, "lua")', "def mine():\n    return 1", "lab.show(mine)",
             "x = await something()"]
    from flashsale.rules import reservation
    assert tool.shown_lines(cells) == len(reservation.RESERVE_LUA.splitlines())


def test_an_exercise_writes_its_solution_a_line_a_minute_and_runs_its_check_twice(measured):
    measured(exercise=60)
    task = "def reserve():\n    ### BEGIN SOLUTION\n" + "    x = 1\n" * 10 + "    ### END SOLUTION\n"
    # 2 runs of 1 minute, 10 lines written at 1 a minute, 2 lines read at 8 a minute: 12.25 -> 15
    assert tool.minutes(notebook(("code", task)), "exercise") == tool.Minutes(15, 15)


def test_a_notebook_never_measured_is_named_with_the_command_that_measures_it(measured):
    measured()
    with pytest.raises(LookupError, match="--time lesson"):
        tool.minutes(notebook(("md", "x")), "lesson")


README = """| notebook | goal | alone | in a room |
| `00-setup` | start it | 1 | 2 |
| | the whole lab | 1 | 2 |

| notebook | your task | the check | alone | in a room |
| 10-idempotent-reservation | the Lua | races | 3 | 4 |
| | every exercise | | 3 | 4 |

Notebook `00` (2 min in a room), then `10-idempotent-reservation` (4 min in a room)."""


def test_the_readme_tables_and_the_plans_brackets_are_rewritten_from_the_model():
    text = tool.in_step(README, {"00-setup": tool.Minutes(10, 15)}, {"10-idempotent-reservation": tool.Minutes(20, 25)})
    assert "| `00-setup` | start it | 10 | 15 |" in text and "| | the whole lab | 10 | 15 |" in text
    assert "| 10-idempotent-reservation | the Lua | races | 20 | 25 |" in text
    assert "| | every exercise | | 20 | 25 |" in text
    assert "Notebook `00` (15 min in a room), then `10-idempotent-reservation` (25 min in a room)." in text

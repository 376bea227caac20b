"""tools/stability.py's report: each fact cell's outputs counted over the runs, and the runs where one flipped."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("stability_tool", ROOT / "tools" / "stability.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)

FACT = "# NBVAL_CHECK_OUTPUT\nprint('the counter counted the killed batch twice:', twice)"


def run(number: int, said: str, failed: bool, seconds: float = 60.0) -> dict:
    cells = [{"cell": 3, "source": "x = 1", "checked": False, "failed": False, "got": "", "seconds": 1.0},
             {"cell": 14, "source": FACT, "checked": True, "failed": failed, "got": said, "seconds": 0.1}]
    return {"run": number, "seconds": seconds, "returncode": int(failed), "cells": cells, "left running": [],
            "summary": "1 failed" if failed else "2 passed"}


def test_a_fact_that_flips_is_named_with_its_outputs_and_the_run_it_flipped_in():
    text = tool.report(Path("08-exactly-once.ipynb"), "tansu", [
        run(1, "the counter counted the killed batch twice: True\n", False, 50),
        run(2, "the counter counted the killed batch twice: False\n", True, 70),
        run(3, "the counter counted the killed batch twice: True\n", False, 60)])
    assert "cell 14 `print('the counter counted the killed batch twice:', twice)`: held 2 of 3, flipped in run(s) [2]" \
        in text
    assert "  2 × the counter counted the killed batch twice: True" in text
    assert "  1 × the counter counted the killed batch twice: False" in text
    assert "runs that failed: ['run 2: 1 failed']" in text and "min 50, median 60, max 70" in text


def test_what_a_cell_showed_is_read_from_streams_results_and_errors():
    outputs = [{"output_type": "stream", "text": "printed\n"},
               {"output_type": "execute_result", "data": {"text/plain": "{'a': 1}"}},
               {"output_type": "error", "ename": "KeyError", "evalue": "'order-000'"}]
    assert tool.text_of(outputs) == "printed\n{'a': 1}\nKeyError: 'order-000'\n"

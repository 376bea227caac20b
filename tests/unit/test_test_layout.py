"""The suite's own layout. pytest imports test modules by their base name (there is no package per folder), so two
folders holding a `test_doctor.py` stop the whole run at collection, before any test: CI lost a round to it."""
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_base_name() -> None:
    names = Counter(path.name for path in TESTS.rglob("test_*.py") if "__pycache__" not in path.parts)
    assert [name for name, count in names.items() if count > 1] == []

"""`flashsale doctor`: is this machine ready for the lab? One line per check, ✔ or ✗, and for each ✗ the one
step that fixes it.

Two halves, so that every ✗ can be tested by faking its condition: `gather()` (machine.py) asks the machine
(runs the binaries, looks at ports, memory, disk) and returns `Facts`; `checks(facts)` (checks.py) is pure and
turns them into `Check`s. `start()` (`--start`) brings a throw-away stack up for real and measures it.
"""
import json

from flashsale.doctor.checks import (
    DISK_NEED,
    GIB,
    MEMORY_NEED,
    MIB,
    SERVERS,
    Binary,
    Check,
    Facts,
    Port,
    blocking,
    checks,
)
from flashsale.doctor.machine import gather
from flashsale.doctor.start import start
from flashsale.settings import Settings

__all__ = ["DISK_NEED", "GIB", "MEMORY_NEED", "MIB", "SERVERS", "Binary", "Check", "Facts", "Port", "blocking",
           "checks", "gather", "main", "start"]


def main(settings: Settings, as_json: bool = False, start_stack: bool = False) -> int:
    """Print the checks (and `--start`'s), one line each; 1 when something blocks the lab, else 0."""
    results = checks(gather(settings))
    if start_stack and not blocking(results):  # no stack can start where a check already blocks it
        results.append(start(settings))
    if as_json:
        print(json.dumps({"ok": not blocking(results), "checks": [check.as_dict() for check in results]}))
    else:
        for check in results:
            mark = "✔" if check.ok else ("✗" if check.blocks else "✗ (does not block the lab)")
            print(f"{mark} {check.name}: {check.detail}" + (f"\n    fix: {check.fix}" if check.fix else ""))
        print(f"\n{len(blocking(results))} problem(s) block the lab." if blocking(results) else
              "\nReady: nothing blocks the lab.")
    return 1 if blocking(results) else 0

"""Run a lesson N times under nbval on its broker, and report what each fact cell printed each time.

    python tools/stability.py notebooks/08-exactly-once.ipynb --runs 20
    python tools/stability.py notebooks/05-scaling.ipynb --runs 20 --broker tansu --keep /tmp/runs-05

Each run is the suite's (`pytest --nbval-lax`, a FLASHSALE_HOME of its own, nothing of its stack left after it),
with this file loaded as a pytest plugin (`-p stability`) that notes what every cell printed. A fact cell
(`NBVAL_CHECK_OUTPUT`) must print what the notebook says on every run: the report counts each distinct output of
each fact cell and names the runs where one differed. `--keep DIR` keeps every run's outputs (one JSON a run),
the cells that are not checked included, for the post-mortem of a flip. `--broker` sets FLASHSALE_BROKER for the
run; lessons 05 and 08 take Apache Kafka when it is installed unless it is set (`lab.kafka_if_installed`).

The report ends with the runs' seconds: the measured run that `tools/notebooks.py` models a lesson's minutes with.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = "NBVAL_CHECK_OUTPUT"
NOTES = "FLASHSALE_STABILITY_NOTES"  # where the plugin writes, one JSON line a cell


# --- the plugin: loaded in the nbval run by `-p stability` ----------------------------------------------------

def text_of(outputs) -> str:
    """What a cell showed, as text: its streams, and the plain text of its results; errors by name."""
    parts = []
    for output in outputs or []:
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif output.get("output_type") in ("execute_result", "display_data"):
            parts.append(output.get("data", {}).get("text/plain", "") + "\n")
        elif output.get("output_type") == "error":
            parts.append(f"{output.get('ename')}: {output.get('evalue')}\n")
    return "".join(parts)


def pytest_runtest_makereport(item, call):
    if call.when != "call" or not hasattr(item, "cell") or not os.environ.get(NOTES):
        return
    with open(os.environ[NOTES], "a") as notes:
        notes.write(json.dumps({"cell": item.cell_num, "source": item.cell.source,
                                "checked": CHECKED in item.cell.source, "failed": call.excinfo is not None,
                                "got": text_of(item.test_outputs), "expected": text_of(item.cell.outputs),
                                "seconds": round(call.duration, 2)}) + "\n")


# --- the runs ------------------------------------------------------------------------------------------------

def run_once(notebook: Path, broker: str | None, keep: Path | None, number: int) -> dict:
    """One nbval run of `notebook` in a home of its own; what every cell printed, and the seconds it took."""
    sys.path.insert(0, str(ROOT / "tests" / "notebooks"))
    from lab_processes import clean_up, survivors

    with tempfile.TemporaryDirectory(prefix="stability-") as home:
        notes = Path(home) / "notes.jsonl"
        env = {**os.environ, "FLASHSALE_HOME": home, NOTES: str(notes),
               "PYTHONPATH": os.pathsep.join([str(ROOT / "tools"), os.environ.get("PYTHONPATH", "")])}
        if broker:
            env["FLASHSALE_BROKER"] = broker
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-cell-timeout=600", "-p",
                               "stability", "-p", "no:cacheprovider", f"--basetemp={home}/nbval", "-q",
                               str(notebook)], cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.monotonic() - started
        stack_home = Path(home) / notebook.stem
        left = survivors(stack_home)
        clean_up(stack_home)
        cells = [json.loads(line) for line in notes.read_text().splitlines()] if notes.exists() else []
    run = {"run": number, "seconds": round(seconds, 1), "returncode": done.returncode, "cells": cells,
           "left running": left, "summary": (done.stdout.strip().splitlines() or ["(no output)"])[-1]}
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        (keep / f"run-{number:02d}.json").write_text(json.dumps({**run, "stdout": done.stdout[-20000:]}, indent=1))
    return run


def report(notebook: Path, broker: str, runs: list[dict]) -> str:
    """Each fact cell: every distinct output and in how many runs; the runs where it was not the notebook's."""
    facts: dict[int, dict] = {}
    for run in runs:
        for cell in run["cells"]:
            if cell["checked"]:
                fact = facts.setdefault(cell["cell"], {"source": cell["source"], "outputs": Counter(), "flips": []})
                fact["outputs"][cell["got"]] += 1
                if cell["failed"]:
                    fact["flips"].append(run["run"])
    lines = [f"{notebook.stem} on {broker}, {len(runs)} runs under nbval, {date.today()}:"]
    for number, fact in sorted(facts.items()):
        first = next(line for line in fact["source"].splitlines() if CHECKED not in line)
        held = len(runs) - len(fact["flips"])
        lines.append(f"  cell {number} `{first.strip()[:70]}`: held {held} of {len(runs)}"
                     + (f", flipped in run(s) {fact['flips']}" if fact["flips"] else ""))
        for output, count in fact["outputs"].most_common():
            lines.append(f"      {count:>3} × " + output.rstrip().replace("\n", "\n            "))
    missing = [run["run"] for run in runs if len({c["cell"] for c in run["cells"] if c["checked"]}) < len(facts)]
    failed = [f"run {run['run']}: {run['summary']}" for run in runs if run["returncode"]]
    leaks = [f"run {run['run']}: {run['left running']}" for run in runs if run["left running"]]
    seconds = sorted(run["seconds"] for run in runs)
    lines += [f"  runs that did not reach every fact cell: {missing or 'none'}",
              f"  runs that failed: {failed or 'none'}", f"  processes left running: {leaks or 'none'}",
              f"  seconds a run (nbval, start-up included): min {seconds[0]}, median {seconds[len(seconds) // 2]}, "
              f"max {seconds[-1]}"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--broker", choices=("tansu", "kafka"), help="FLASHSALE_BROKER for the runs")
    parser.add_argument("--keep", type=Path, help="a folder for every run's outputs, one JSON a run")
    args = parser.parse_args()
    notebook = args.notebook.resolve()
    broker = args.broker or os.environ.get("FLASHSALE_BROKER") or "its default"
    runs = []
    for number in range(1, args.runs + 1):
        runs.append(run_once(notebook, args.broker, args.keep, number))
        flipped = [c["cell"] for c in runs[-1]["cells"] if c["checked"] and c["failed"]]
        print(f"run {number}: {runs[-1]['seconds']} s, {runs[-1]['summary']}"
              + (f", fact cells that flipped: {flipped}" if flipped else ""), flush=True)
    print(report(notebook, broker, runs))
    return 0 if all(run["returncode"] == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

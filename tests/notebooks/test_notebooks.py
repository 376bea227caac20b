"""Every notebook, top to bottom, against the real embedded stack: `pytest --nbval-lax`, one notebook at a time.

Each notebook runs in a pytest subprocess of its own (nbval's), with FLASHSALE_HOME set to a temporary
folder, so its stack, ports and kernel are its own and a failure names the notebook and the cell. Cells
marked NBVAL_CHECK_OUTPUT must print exactly what the notebook says (the lesson's facts); other output
is not compared. Afterwards no process of that notebook's stack may be alive.

    pytest tests/notebooks                   # the whole lab, each notebook stopping at its first failing cell
                                             # (about 6 minutes here)
    pytest --nbval-lax notebooks/03-*.ipynb  # one notebook by hand (its stack goes to notebooks/.flashsale)
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lab_processes import clean_up, ledger, survivors

from flashsale.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))


# 09 starts three Apache Kafka nodes of its own whichever broker the suite runs on: the Kafka pass runs it,
# and the tansu pass would only run the same thing again (about 3 minutes of CI).
ON_KAFKA_ONLY = {"09-replication"}
# 01 and 02 race the synchronous shop (PostgreSQL, the provider): no event goes through a broker, so the Kafka
# pass would run the same races again.
BROKER_FREE = {"01-oversell", "02-locks"}


def _param(notebook: Path):
    return pytest.param(notebook, id=notebook.stem,
                        marks=[pytest.mark.broker_free] if notebook.stem in BROKER_FREE else [])


@pytest.mark.timeout(900)
@pytest.mark.parametrize("notebook", [_param(notebook) for notebook in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(notebook: Path, tmp_path: Path):
    if notebook.stem in ON_KAFKA_ONLY and Settings().broker != "kafka":
        pytest.skip("it runs its own Apache Kafka nodes: the suite's Kafka pass runs it")
    home = tmp_path / notebook.stem  # lab.start(name) puts the stack in <FLASHSALE_HOME>/<name>
    try:
        # An explicit --basetemp: a nested pytest would otherwise rotate the numbered temp dirs away,
        # the outer session's included (and the servers' data with them).
        run = subprocess.run([sys.executable, "-m", "pytest", "-x", "--nbval-lax", "--nbval-cell-timeout=600",
                              "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'nbval'}", "-q", str(notebook)],
                             cwd=ROOT, env={**os.environ, "FLASHSALE_HOME": str(tmp_path)},
                             capture_output=True, text=True, timeout=850)
        summary = (run.stdout.strip().splitlines() or ["(no output)"])[-1]
        print(f"{notebook.name}: {summary}")
        assert run.returncode == 0, f"{summary}\n{run.stdout[-8000:]}\n{run.stderr[-2000:]}"
        assert ledger(home), f"{notebook.name} started no stack in {home}"
        assert survivors(home) == [], f"{notebook.name} left processes of its stack running"
    finally:
        clean_up(home)

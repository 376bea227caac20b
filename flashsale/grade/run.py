"""Run one submission's plan in a kernel of its own, headless, and say how it went; then leave nothing running.

    python -m flashsale.grade.run JOB.json RESULT.json

The grader starts one of these per notebook (`flashsale.grade.grade_all`, N at a time). The kernel gets
FLASHSALE_HOME set to the job's own folder, so the notebook's `lab.start(…)` puts its stack there, on free
ports. Each cell gets what is left of the notebook's time; a cell that outlives it, a kernel that dies or a
cell that raises ends the run, and the kit's teardown cell runs if the kernel still can. Whatever happened,
`cleanup.clean_up` then stops the stack (`Stack.down`) and kills every process that names the job's folder.
"""
import contextlib
import importlib
import json
import os
import pkgutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from flashsale.grade import outcome, probe
from flashsale.grade.cleanup import TEARDOWN_S, clean_up
from flashsale.grade.submission import Step


def execute(steps: list[Step], home: Path, timeout: float) -> tuple[bool, str, str]:
    """(passed, rule, detail). Passed only if every step ran, no probe saw the kit changed, and the check held."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(step.source) for step in steps])
    os.environ["JUPYTER_PATH"] = str(_kernel_spec(home.with_suffix(".jupyter")))
    client = NotebookClient(nb, kernel_name="python3", shutdown_kernel="immediate", startup_timeout=int(timeout),
                            resources={"metadata": {"path": str(home)}})
    deadline, probes, verdict, tried = time.monotonic() + timeout, Probes(), None, []
    with client.setup_kernel(env={**os.environ, "FLASHSALE_HOME": str(home)}):
        for index, step in enumerate(steps[:-1]):  # the last is the teardown
            client.timeout = max(1, int(deadline - time.monotonic()))
            started = time.monotonic()
            try:
                client.execute_cell(nb.cells[index], index)
            except CellTimeoutError:
                verdict = (outcome.TIMED_OUT, f"{step.where} still ran after {timeout:.0f} s")
            except DeadKernelError:
                verdict = (outcome.DIED, f"in {step.where} (os._exit, a segfault, memory)")
            except CellExecutionError as error:
                if step.kind == "try":  # the kit's try-out cells: the check, not they, decides
                    tried.append(f"{error.ename} in {step.where}")
                    continue
                verdict = ((outcome.GRADER, f"{step.where}: {error.ename}: {error.evalue}") if step.kind == "setup"
                           else outcome.failed(error.ename, error.evalue, step.where, rules()))
            else:
                print(f"{step.where}: {time.monotonic() - started:.1f} s", flush=True)  # the job's log
                if step.kind == "probe":
                    verdict = probes.judge(step, nb.cells[index], after_check=steps[index - 1].kind == "check")
            if verdict is not None:
                break
        if verdict is None or verdict[0] not in (outcome.TIMED_OUT, outcome.DIED):
            client.timeout = TEARDOWN_S
            with contextlib.suppress(CellExecutionError, CellTimeoutError, DeadKernelError):  # clean_up stops it
                client.execute_cell(nb.cells[-1], len(nb.cells) - 1)
    if verdict is None:
        return True, "", "; ".join(tried)
    return False, verdict[0], outcome.first_line(verdict[1], tail=verdict[0] == outcome.GRADER)


class Probes:
    """The first probe's fingerprint is the kit as it was, before any of the learner's code; each later one is
    compared with it."""

    def __init__(self) -> None:
        self.before: dict[str, str] | None = None

    def judge(self, step: Step, cell: nbformat.NotebookNode, after_check: bool) -> tuple[str, str] | None:
        printed = probe.read(step.nonce, "".join(output.get("text", "") for output in cell.outputs))
        if self.before is None:
            self.before = printed
            return None if printed else (outcome.GRADER, "the probe before the task cells printed nothing")
        changed = probe.changes(self.before, printed) if printed else ["the probe's own output (none, or forged)"]
        if not changed:
            return None
        return outcome.KIT_CHANGED, (f"{'during' if after_check else 'before'} the Check cell, the learner's code "
                                     f"had changed {', '.join(changed[:5])}" + (" …" if len(changed) > 5 else ""))


def _kernel_spec(folder: Path) -> Path:
    """A `python3` kernel of this very Python (where flashsale is), ahead of any the user installed elsewhere."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f",
                                                           "{connection_file}"],
                                                  "display_name": "flashsale grade", "language": "python"}))
    return folder


def rules() -> tuple[str, ...]:
    """Every rule of every exercise, as its check names it (`str(Rule)`)."""
    import flashsale.lab.exercises as package

    found = []
    for module in pkgutil.iter_modules(package.__path__, "flashsale.lab.exercises."):
        found += [str(rule) for rule in getattr(importlib.import_module(module.name), "RULES", ())]
    return tuple(found)


def main(job: Path, result: Path) -> None:
    spec = json.loads(job.read_text())
    home = Path(spec["home"])
    try:
        passed, rule, detail = execute([Step(**s) for s in spec["steps"]], home, spec["timeout"])
    finally:
        clean_up(home)
    result.write_text(json.dumps({"passed": passed, "rule": rule, "detail": detail}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))

"""Find what is left of a notebook's stack: any process that names its home."""
from pathlib import Path

import psutil


def survivors(home: Path) -> list[str]:
    """Processes whose command line, environment, working directory or open files mention `home`.

    Services get FLASHSALE_HOME=<home>, PostgreSQL and Redis have their data dir under it on the
    command line, and the broker writes its log there. A pid from the ledger alone is not proof: on a
    busy machine pids are reused.
    """
    needle, found = str(home), []
    for process in psutil.process_iter(["pid", "name", "cmdline", "environ", "cwd"]):
        try:
            info = process.info
            texts = [*(info["cmdline"] or []), *(info["environ"] or {}).values(), info["cwd"] or ""]
            if any(needle in text for text in texts) or any(needle in f.path for f in process.open_files()):
                if process.status() != psutil.STATUS_ZOMBIE:
                    found.append(f"{process.pid} {info['name']}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def ledger(home: Path) -> set[int]:
    """Every pid the notebook's stack ever recorded (see flashsale.lab.control.LabStack)."""
    path = home / "pids.log"
    return {int(line) for line in path.read_text().split()} if path.exists() else set()


def clean_up(home: Path) -> None:
    """Stop whatever a failed run left behind, so a failure never leaks processes on a shared machine."""
    from flashsale.settings import Settings
    from flashsale.stack.control import Stack

    if (home / "stack.json").exists():
        Stack(Settings(home=home)).down()

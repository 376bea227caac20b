"""Leave nothing running: a graded notebook's stack stopped, and every process that names its folder killed."""
import contextlib
import os
from pathlib import Path

import psutil

TEARDOWN_S = 120  # lab.stop: every service and server of the stack stopped, each given its grace period


def clean_up(home: Path) -> list[int]:
    """Stop each stack under `home`, then kill whatever still names it (a check's own processes, orphans of a
    killed kernel). Every such process is this job's: the folder is new and no one else knows it."""
    from flashsale.settings import Settings
    from flashsale.stack.control import Stack

    for saved in home.glob("**/stack.json"):
        Stack(Settings(home=saved.parent)).down()
    folder, found = str(home), []
    for process in psutil.process_iter(["cmdline", "environ"]):  # unreadable ones come back as None
        named = (process.info["environ"] or {}).get("FLASHSALE_HOME", "")
        if process.pid != os.getpid() and (named == folder or named.startswith(folder + os.sep) or any(
                folder + os.sep in arg for arg in process.info["cmdline"] or [])):
            found.append(process)
    for process in found:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(found, timeout=10)
    return [process.pid for process in found]

"""`doctor --start`: a throw-away stack, for real: its time to healthy and its memory."""
import shutil
import tempfile
import time
from pathlib import Path

from flashsale.doctor.checks import MIB, Check
from flashsale.harness.footprint import stack_memory
from flashsale.settings import Settings
from flashsale.stack.control import Stack
from flashsale.stack.processes import StackError, free_ports


def start(settings: Settings) -> Check:
    """Bring a stack up on free ports in a temporary home; its time to healthy and its memory; then down again."""
    home = Path(tempfile.mkdtemp(prefix="flashsale-doctor-"))
    gateway, shop, psp = free_ports(3)
    stack = Stack(settings.model_copy(update={"home": home, "gateway_port": gateway, "shop_port": shop,
                                              "psp_port": psp}))
    began = time.monotonic()
    try:
        stack.up()
        seconds = time.monotonic() - began
        uss, count = stack_memory(stack)
    except StackError as error:
        stack.down()
        return Check("a stack starts", False, f"{stack.profile.name}: {str(error).splitlines()[0]}",
                     f"read the logs in {home / 'logs'}; `flashsale doctor` above names what is missing")
    stack.down()
    shutil.rmtree(home, ignore_errors=True)
    return Check("a stack starts", True, f"{stack.profile.name}: healthy in {seconds:.1f} s; {uss / MIB:.0f} MiB "
                 f"(USS summed over its {count} processes); stopped again")


"""A stack of the tools' own: in a temporary home, on free ports, taken down and removed however the tool ends."""
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flashsale.settings import Settings
from flashsale.stack.control import SERVICES, Stack
from flashsale.stack.processes import free_port


@contextmanager
def scratch_stack(broker: str, prefix: str, services: tuple[str, ...] = tuple(SERVICES)) -> Iterator[Stack]:
    home = Path(tempfile.mkdtemp(prefix=prefix))
    stack = Stack(Settings(home=home, broker=broker, gateway_port=free_port(), shop_port=free_port(),
                           psp_port=free_port()))
    try:
        stack.up(services=services)  # all or nothing: a failed `up` stops what it started, and the home goes too
        yield stack
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)

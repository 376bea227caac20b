"""Show the code that runs: a module's, class's or function's real source, highlighted.

The notebooks never paraphrase a service; they show it, so what you read is
what the stack you just started is executing.
"""
import inspect
import textwrap
from pathlib import Path

from IPython.display import Code


def show(thing, language: str = "python") -> Code:
    """`show(inventory)`, `show(inventory.handle)`, or any text: `show(RESERVE_LUA, "lua")`."""
    if isinstance(thing, str):
        return Code(thing, language=language)
    return Code(textwrap.dedent(inspect.getsource(thing)), language=language)  # a method reads from its margin


def lines(module) -> str:
    """How long a module is: the style guide wants each to read in two minutes."""
    path = Path(inspect.getfile(module))
    return f"{path.name}: {len(path.read_text().splitlines())} lines"

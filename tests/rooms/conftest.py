"""Rooms: the hosted labs (Codespaces, Binder) and the classroom server, tested as far as this machine can.

The tests reach the classroom's own modules (`classroom/`) and the tools that drive a Jupyter server's kernel
(`tools/remote_kernel.py`) by path: neither is part of the installed package.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for folder in (ROOT / "classroom", ROOT / "tools", ROOT / "tests" / "notebooks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

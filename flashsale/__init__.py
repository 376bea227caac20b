"""flashsale: a flash sale, oversold by a naive checkout and saved by events."""
import sys

__version__ = "0.1.0"

# The stack is POSIX: it locks its process table with fcntl, stops its servers by process group and freezes them
# with SIGSTOP. Importing the command with what Windows lacks taken away stopped at `import fcntl`, then at
# `signal.SIGKILL`. So on Windows itself the lab says where it runs, in one line (SystemExit: no traceback, in a
# terminal or in a notebook), instead of failing somewhere inside.
NOT_ON_WINDOWS = ("flashsale runs on Linux and macOS, not on Windows itself. On Windows, use WSL 2 (`wsl --install`, "
                  "then install the kit inside Linux: everything runs there) or a hosted lab (Codespaces or Binder, "
                  "the README's badges).")
if sys.platform == "win32":
    raise SystemExit(NOT_ON_WINDOWS)

"""Closed-loop load with wrk (Debian's package): the reference for raw HTTP rates.

Each request is a distinct buyer, so the event-driven system and the shops do
the real work every time (no per-user limit or sold-out shortcut). wrk runs its
Lua script once per thread, and every thread starts with the same counter and
the same random seed: ids made of a counter and `math.random` came twice, one
from each thread (issue 25: 16,134 orders from 8,094 users). So `setup` gives
each thread its own number, and each run has its own prefix: a userId is
`wrk-<run>-<thread>-<n>`, never sent twice.
"""
import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass

from flashsale.stack.processes import StackError

DISTINCT_BUYERS = """
local threads = 0
function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

function init(args)
  counter = 0
end

request = function()
  counter = counter + 1
  local body = '{"userId":"wrk-%(run)s-' .. thread_id .. '-' .. counter .. '","productId":"%(product)s","quantity":1}'
  return wrk.format("POST", "%(path)s", {["Content-Type"]="application/json"}, body)
end
"""


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float | None  # None: no answer came back within the run (wrk then reports latencies of nothing, 0)
    p99_ms: float | None
    requests: int
    errors: int  # non-2xx answers and socket errors


def wrk(base_url: str, path: str, product_id: str, connections: int, seconds: int) -> WrkResult:
    binary = shutil.which("wrk")
    if binary is None:
        raise StackError("`flashsale bench` needs wrk: apt-get install wrk (or brew install wrk)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(DISTINCT_BUYERS % {"run": uuid.uuid4().hex[:8], "product": product_id, "path": path})
        script.flush()
        # --timeout: wrk's own is 2 s, and a slower answer would vanish into "Socket errors" instead of its latency.
        out = subprocess.run([binary, "-t2", f"-c{connections}", f"-d{seconds}s", f"--timeout={seconds}s", "--latency",
                              "-s", script.name, base_url], capture_output=True, text=True, timeout=seconds + 60).stdout
    return report(out)


def report(out: str) -> WrkResult:
    """What wrk printed, as numbers."""
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + \
        (sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1))) if socket_errors else 0)
    requests = int(_find(r"(\d+) requests in", out).group(1))
    return WrkResult(float(_find(r"Requests/sec:\s+([\d.]+)", out).group(1)),
                     _ms(out, "50%") if requests else None, _ms(out, "99%") if requests else None, requests, errors)


def _find(pattern: str, out: str) -> re.Match[str]:
    found = re.search(pattern, out)
    if found is None:
        raise RuntimeError(f"wrk's report has no {pattern!r}:\n{out}")
    return found


def _ms(out: str, percentile: str) -> float:
    value, unit = _find(rf"{percentile}\s+([\d.]+)(us|ms|s)", out).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

"""A long sale: consecutive 1,000-buyer races on one stack, to see whether the last is as fast as the first.

    python tools/long_sale.py                    # 30 races on tansu
    python tools/long_sale.py --broker kafka     # the same on Apache Kafka
    python tools/long_sale.py --races 5 --json out.json

Each race is the demo's (`flash_sale(stack, "gateway")`): a new sale of 100, 1,000 distinct buyers at once,
then wait until every accepted order is decided. The stack is this script's own (a fresh home under /tmp, free
ports), started first and stopped at the end. Prints one row per race; first, median and last; and one JSON object.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from flashsale.lab.races import flash_sale
from flashsale.settings import Settings
from flashsale.stack.control import Stack
from flashsale.stack.processes import free_port

KEYS = ("answered_s", "settled_s", "accepted_per_s")


def race(stack: Stack, buyers: int) -> dict:
    outcome = flash_sale(stack, "gateway", buyers=buyers)
    return {"answered_s": round(outcome.race.wall_s, 3),  # first buyer sent until the last one answered
            "settled_s": None if outcome.settled_s is None else round(outcome.settled_s, 3),
            "accepted_per_s": round(outcome.race.accepted_per_s), "accepted": len(outcome.race.accepted),
            "sold": outcome.sold, "oversold": outcome.oversold, "lost": outcome.lost,
            "charged_twice": outcome.charged_twice,
            "answers": outcome.race.statuses()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=("tansu", "kafka"), default="tansu")
    parser.add_argument("--races", type=int, default=30)
    parser.add_argument("--buyers", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="flashsale-long-sale-"))
    stack = Stack(Settings(home=home, broker=args.broker, gateway_port=free_port(), shop_port=free_port(),
                           psp_port=free_port()))
    try:
        stack.up()
        races, start, load = [], time.monotonic(), [os.getloadavg()[0]]  # the machine may be shared: say how busy
        for i in range(args.races):
            races.append(race(stack, args.buyers))
            print(f"{i + 1:3}  " + "  ".join(f"{key} {value}" for key, value in races[-1].items()), flush=True)
        total_s = time.monotonic() - start
        load.append(os.getloadavg()[0])
        log_mb = sum(f.stat().st_size for f in (home / "kafka").rglob("*.log")) / 2**20  # Apache Kafka's, on disk
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    result = {"broker": args.broker, "races": len(races), "buyers": args.buyers, "total_s": round(total_s, 1),
              "load_1min_before_after": [round(x, 1) for x in load],
              "log_mb": round(log_mb, 1) if args.broker == "kafka" else None, **summary(races), "each": races}
    print(f"oversold {result['oversold']}, lost {result['lost']}, charged twice {result['charged_twice']}, "
          f"unsettled {result['unsettled']} over {len(races)} races in {total_s:.0f} s; "
          f"load average {load[0]:.1f} before, {load[1]:.1f} after")
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    held = result["oversold"] == result["lost"] == result["charged_twice"] == result["unsettled"] == 0
    return 0 if held and all(r["accepted"] for r in races) else 1


def summary(races: list[dict]) -> dict:
    """First, median and last (printed as a table), and the contract's counts over every race."""
    first, last = races[0], races[-1]
    middle = {key: statistics.median(r[key] for r in races if r[key] is not None) for key in KEYS}
    print(f"\n{'':16}{'first':>10}{'median':>10}{'last':>10}")
    for key in KEYS:
        print(f"{key:16}{first[key]!s:>10}{middle[key]!s:>10}{last[key]!s:>10}")
    return {"first": first, "median": middle, "last": last,
            **{key: sum(r[key] for r in races) for key in ("oversold", "lost", "charged_twice")},
            "unsettled": sum(r["settled_s"] is None for r in races)}


if __name__ == "__main__":
    sys.exit(main())

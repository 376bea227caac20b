"""How an idle stack that has sold costs, and how it wakes: races, a quiet spell, the idle CPU, then single orders.

    python tools/wake_after_races.py --broker tansu --races 2 --buyers 3000 --idle 30 --orders 4

It brings a stack up in a home of its own on free ports, runs `--races` races of `--buyers` buyers (so the topics
hold thousands of events, as after a class's sales), waits 20 s, measures `idle_footprint` over `--idle` seconds
(the bench's `idle_cpu_pct`), then places `--orders` single orders 8 s apart (past the doze's quiet spell, so
each finds the stack asleep on tansu) and prints each one's time from POST to its final state on the WebSocket,
as the bench's `first_order_after_idle_ms`. Then it takes the stack down and removes its home.
"""
import argparse
import asyncio
import os
import time

from scratch import scratch_stack  # tools/scratch.py

from flashsale.bench.e2e import measure
from flashsale.harness.footprint import idle_footprint
from flashsale.harness.load import run_buyers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=("tansu", "kafka"), default=os.environ.get("FLASHSALE_BROKER", "tansu"))
    parser.add_argument("--races", type=int, default=2)
    parser.add_argument("--buyers", type=int, default=3000)
    parser.add_argument("--idle", type=float, default=30, help="seconds of idle CPU measured")
    parser.add_argument("--orders", type=int, default=4)
    args = parser.parse_args()
    with scratch_stack(args.broker, "flashsale-wake-") as stack:
        wired = stack.wired()
        for _ in range(args.races):
            stack.reset(args.buyers // 3, 1)
            run_buyers("gateway", wired.gateway_url, buyers=args.buyers, progress=False)
        stack.reset(args.orders + 10, 1)
        time.sleep(20)
        idle = idle_footprint(stack, args.idle)
        print(f"idle: {idle.idle_cpu_pct}% of a core over {idle.seconds} s: {idle.idle_cpu_pct_by_component}")
        for _ in range(args.orders):
            woken = asyncio.run(measure(wired.gateway_url, wired.product_id, rate=1, seconds=1, warm_up_s=0))
            print("first order after a quiet spell:", [round(ms) for ms in woken.latencies_ms] or "never final", "ms")
            time.sleep(8)

if __name__ == "__main__":
    main()

"""What idle consumers cost the broker: its CPU with none, then with five at each fetch wait.

    python tools/idle_fetch_cost.py --broker tansu --waits 100 500 1000

It brings up the infrastructure alone (no services) in a home of its own on free ports, measures each component's
CPU over `--seconds` with no consumer, then with five plain consumers of six partitions each (order.events and
payment.events, from their end) at each `fetch.wait.max.ms` in turn, and with none again. On tansu, whose fetch
sleeps out its whole wait, the broker's idle cost is its consumers' fetches (docs/benchmarks.md, 2026-12-08).
"""
import argparse
import threading
import time

import psutil
from confluent_kafka import OFFSET_END, Consumer, TopicPartition
from scratch import scratch_stack  # tools/scratch.py

from flashsale import events as ev
from flashsale.brokers import FAST_CONSUMER
from flashsale.harness.footprint import components
from flashsale.stack.control import Stack


def cpu(stack: Stack) -> dict[str, float]:
    return {name: sum(psutil.Process(pid).cpu_times()[:2]) for pid, name in components(stack).items()}


def measure(stack: Stack, label: str, seconds: float) -> None:
    before = cpu(stack)
    time.sleep(seconds)
    after = cpu(stack)
    print(f"{label}: " + ", ".join(f"{k} {(after[k] - before[k]) * 100 / seconds:.2f}%" for k in after), flush=True)


def poll(consumer: Consumer, stop: threading.Event) -> None:
    while not stop.is_set():
        consumer.consume(1, timeout=0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=("tansu", "kafka"), default="tansu")
    parser.add_argument("--waits", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    with scratch_stack(args.broker, "flashsale-fetch-cost-", services=()) as stack:  # the servers alone
        time.sleep(20)
        measure(stack, "no consumer", args.seconds)
        bootstrap = stack.wired().kafka_bootstrap_servers
        for wait in args.waits:
            stop = threading.Event()
            consumers = []
            for i in range(5):
                consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"idle-{i}",
                                     "enable.auto.commit": False, **FAST_CONSUMER, "fetch.wait.max.ms": wait})
                consumer.assign([TopicPartition(topic, p, OFFSET_END) for topic in (ev.ORDER_EVENTS, ev.PAYMENT_EVENTS)
                                 for p in range(3)])
                consumers.append(consumer)

            threads = [threading.Thread(target=poll, args=(c, stop)) for c in consumers]
            for thread in threads:
                thread.start()
            time.sleep(10)
            measure(stack, f"5 consumers, fetch.wait.max.ms {wait}", args.seconds)
            stop.set()
            for thread in threads:
                thread.join()
            for consumer in consumers:
                consumer.close()
            time.sleep(5)
        measure(stack, "no consumer again", args.seconds)

if __name__ == "__main__":
    main()

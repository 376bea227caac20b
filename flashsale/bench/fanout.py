"""WebSocket fan-out: 1,000 connected browsers, notifications published at a fixed rate, publish -> receive.

The publisher writes straight onto notification.events, as the notification
service does, each message stamped with the time it was published, and rings the
stack's bell as that service does (`bell`, where consumers sleep while the stack is
quiet: adapters/kafka/doze.py; unrung, the gateway heard the first second late):
- order updates: two per order (PENDING, then the outcome), each for one of the
  1,000 buyers, at `orders_per_s`;
- stock updates: one every `stock_every_s` for everybody (100 a second: about
  what the notification service sends under load, one per batch).
The first `warm_up_s` are a warm-up (new connections, first sends, the
broker's compiler) and are not stamped, so not counted. The gateway hands each
order update to its buyer's socket, and the newest stock figure to every
socket, at most every 50 ms (services/fanout.py). Latency is counted at the
browsers, in two processes.
"""
import json
import subprocess
import sys
import time
from typing import Any

from confluent_kafka import Producer

from flashsale import events as ev
from flashsale.adapters import kafka
from flashsale.bench.stats import summary

KINDS = ("order_update", "stock_update")  # what the browsers time, each kind on its own


def _read(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None  # stdout=PIPE
    return process.stdout.read()


def measure_fanout(gateway_url: str, bootstrap: str, product_id: str, clients: int, orders_per_s: float,
                   seconds: float, stock_every_s: float = 0.01, processes: int = 2, warm_up_s: float = 1.0,
                   bell: kafka.Bell | None = None) -> dict:
    ws_url = gateway_url.replace("http", "ws", 1) + "/ws"
    share = -(-clients // processes)
    browsers = [subprocess.Popen([sys.executable, "-m", "flashsale.bench.browsers", ws_url, str(first),
                                  str(min(share, clients - first))], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True) for first in range(0, clients, share)]
    try:
        for process in browsers:
            assert process.stdout is not None  # stdout=PIPE
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError("the browsers did not connect")
        published = publish_at_rate(bootstrap, product_id, clients, orders_per_s, seconds, stock_every_s, warm_up_s,
                                    bell)
        time.sleep(2)  # the last messages are on their way
        for process in browsers:
            assert process.stdin is not None  # stdin=PIPE
            process.stdin.close()  # they stop and print what they measured
        reports = [json.loads(_read(process).strip().splitlines()[-1]) for process in browsers]
    finally:
        for process in browsers:
            if process.poll() is None:
                process.kill()
    latencies = {kind: [ms for report in reports for ms in report[kind]] for kind in KINDS}
    return {"clients": clients, "orders_per_s": orders_per_s, "published": published,
            **{kind: summary(values) for kind, values in latencies.items()}}


def publish_at_rate(bootstrap: str, product_id: str, clients: int, orders_per_s: float, seconds: float,
                    stock_every_s: float, warm_up_s: float = 1.0, bell: kafka.Bell | None = None) -> dict:
    # batches as the gateway's producer does
    producer = kafka.reliable_producer(bootstrap, **{"linger.ms": 5})
    producer.produce(ev.NOTIFICATION_EVENTS, b"{}", key="warm-up")  # connected, with a producer id, before the clock
    kafka.flush(producer, 10, "warm-up message")
    ring = bell.ring if bell is not None else lambda: None  # at most once a second (the bell's own limit)
    counts = dict.fromkeys(KINDS, 0)
    started, orders, next_stock = time.monotonic(), 0, 0.0
    while (elapsed := time.monotonic() - started) < seconds + warm_up_s:
        stamp = elapsed >= warm_up_s
        while orders < elapsed * orders_per_s:  # open loop: on schedule, whatever the gateway does
            for status in ("PENDING", "CONFIRMED"):
                send(producer, ev.ORDER_UPDATE, {"orderId": f"fanout-{orders}", "status": status, "reason": None,
                                                 "userId": f"browser-{orders % clients}"}, f"fanout-{orders}", stamp)
                counts["order_update"] += stamp
            orders += 1
        if elapsed >= next_stock:
            send(producer, ev.STOCK_UPDATE, {"productId": product_id, "saleId": 0, "availableStock": 1},
                 product_id, stamp)
            counts["stock_update"] += stamp
            next_stock += stock_every_s
        producer.poll(0)
        ring()
        time.sleep(0.001)
    kafka.flush(producer, 10, "notifications")
    return counts


def send(producer: Producer, kind: str, data: dict[str, Any], key: str, stamp: bool) -> None:
    message = {"type": kind, "data": {**data, "sentAt": time.time() * 1000} if stamp else data}
    producer.produce(ev.NOTIFICATION_EVENTS, json.dumps(message).encode(), key=key)

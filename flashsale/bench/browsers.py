"""1,000 browsers in one process: connect, say "ready", note when each stamped message arrives, report at EOF.

Run by `flashsale bench` as a process of its own, so that the clients do not
share an event loop (or a GIL) with the publisher whose latency they measure.
Usage: python -m flashsale.bench.browsers WS_URL CLIENTS  (then close stdin to stop)
"""
import asyncio
import json
import statistics
import sys
import time

import aiohttp


async def main(ws_url: str, clients: int) -> dict:
    latencies: dict[str, list[float]] = {"order_update": [], "stock_update": []}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = []
        for start in range(0, clients, 100):  # in waves, as browsers would arrive: not 1,000 handshakes at once
            sockets += await asyncio.gather(*(session.ws_connect(f"{ws_url}?userId=browser-{i}", heartbeat=None)
                                              for i in range(start, min(start + 100, clients))))
        listeners = [asyncio.create_task(listen(socket, latencies)) for socket in sockets]
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the bench closes stdin
        for listener in listeners:
            listener.cancel()
        await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
    return {kind: summary(values) for kind, values in latencies.items()}


async def listen(socket, latencies: dict[str, list[float]]) -> None:
    async for message in socket:
        received_ms = time.time() * 1000
        update = json.loads(message.data)
        sent_ms = update.get("data", {}).get("sentAt")
        if sent_ms is not None:
            latencies[update["type"]].append(received_ms - sent_ms)


def summary(values: list[float]) -> dict:
    if not values:
        return {"received": 0}
    ordered = sorted(values)
    return {"received": len(values), "p50_ms": round(statistics.median(ordered), 1),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2])))), flush=True)

"""Browsers in a process: connect, say "ready", note when each stamped message arrives, report at EOF.

Run by `flashsale bench` in processes of their own, so that the clients do not
share an event loop (or a GIL) with the publisher whose latency they measure,
nor queue 1,000 sockets' messages behind each other in one loop.
Usage: python -m flashsale.bench.browsers WS_URL FIRST COUNT  (then close stdin to stop)
"""
import asyncio
import json
import sys
import time

import aiohttp


async def main(ws_url: str, first: int, clients: int) -> dict:
    latencies: dict[str, list[float]] = {"order_update": [], "stock_update": []}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = []
        for start in range(0, clients, 100):  # in waves, as browsers would arrive: not 1,000 handshakes at once
            sockets += await asyncio.gather(*(session.ws_connect(f"{ws_url}?userId=browser-{first + i}",
                                                                 heartbeat=None)
                                              for i in range(start, min(start + 100, clients))))
        listeners = [asyncio.create_task(listen(socket, latencies)) for socket in sockets]
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the bench closes stdin
        for listener in listeners:
            listener.cancel()
        await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
    return latencies


async def listen(socket: aiohttp.ClientWebSocketResponse, latencies: dict[str, list[float]]) -> None:
    async for message in socket:
        received_ms = time.time() * 1000
        update = json.loads(message.data)
        sent_ms = update.get("data", {}).get("sentAt")
        if sent_ms is not None:
            latencies[update["type"]].append(received_ms - sent_ms)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))), flush=True)

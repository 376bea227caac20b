"""End-to-end latency: POST sent -> CONFIRMED/CANCELLED seen on the WebSocket, at a fixed (open-loop) rate.

Open loop means buyers arrive on a schedule whether or not earlier ones were
answered, as real buyers do; a closed loop would slow down with the system
and hide its queueing. The first second warms the stack up (connections,
first fetches, caches) and is not counted, as in the fan-out benchmark.
"""
import asyncio
import json
import time
from dataclasses import dataclass

import aiohttp


@dataclass
class EndToEnd:
    latencies_ms: list[float]  # of the orders sent after the warm-up that reached a final state
    accepted: int  # every 202, the warm-up's included: the orders the stack worked on


async def measure(gateway_url: str, product_id: str, rate: float, seconds: float, warm_up_s: float = 1.0
                  ) -> EndToEnd:
    """Latencies in ms of every order that reached a final state within 30 s of the last send."""
    sent: dict[str, float] = {}
    accepted = 0
    done: dict[str, float] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async with session.ws_connect(gateway_url.replace("http", "ws") + "/ws") as socket:
            listener = asyncio.create_task(_listen(socket, done))

            async def buy(i: int) -> None:
                nonlocal accepted
                start = time.perf_counter()
                async with session.post(f"{gateway_url}/api/orders", json={
                        "userId": f"e2e-{i}-{int(start * 1e6)}", "productId": product_id, "quantity": 1}) as r:
                    accepted += r.status == 202
                    if r.status == 202 and i >= warm_up:
                        sent[(await r.json())["orderId"]] = start

            warm_up = int(rate * warm_up_s)
            t0, total, tasks = time.perf_counter(), warm_up + int(rate * seconds), []
            for i in range(total):
                await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
                tasks.append(asyncio.create_task(buy(i)))
            await asyncio.gather(*tasks)
            deadline = time.perf_counter() + 30
            while set(sent) - set(done) and time.perf_counter() < deadline and not listener.done():
                await asyncio.sleep(0.05)
            if listener.done():
                listener.result()  # the socket failed: say why, rather than report the orders as never final
            listener.cancel()
    return EndToEnd([(done[o] - sent[o]) * 1000 for o in sent if o in done], accepted)


async def _listen(socket: aiohttp.ClientWebSocketResponse, done: dict[str, float]) -> None:
    async for message in socket:
        update = json.loads(message.data)
        if update["type"] == "order_update" and update["data"]["status"] in ("CONFIRMED", "CANCELLED"):
            done.setdefault(update["data"]["orderId"], time.perf_counter())

"""The buyers: N concurrent POSTs fired at once, each one timed.

aiohttp with an unlimited connector: measured here, it fires 1,000 requests in
~0.8 s, where httpx's pool took ~7 s and so measured itself, not the server.
"""
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import aiohttp

if TYPE_CHECKING:
    from tqdm import tqdm

T = TypeVar("T")

PATHS = {"naive": "/naive/orders", "locked": "/locked/orders", "reserve-then-pay": "/reserve-then-pay/orders",
         "gateway": "/api/orders"}
TIMEOUT, REFUSED = "TIMEOUT", "REFUSED"  # a buyer who got no answer: waited too long, or could not connect


@dataclass
class Buyer:
    user: str
    status: int  # HTTP status; 0 when the request itself failed
    latency_ms: float
    sent_at: float  # seconds since the race started
    body: dict = field(default_factory=dict)

    @property
    def order_id(self) -> str | None:
        return self.body.get("orderId")


@dataclass
class Race:
    system: str
    buyers: list[Buyer]
    wall_s: float

    def count(self, *statuses: int) -> int:
        return sum(b.status in statuses for b in self.buyers)

    @property
    def accepted(self) -> list[Buyer]:
        """202 from the gateway, 201 from the shop."""
        return [b for b in self.buyers if b.status in (201, 202)]

    @property
    def order_ids(self) -> list[str]:
        """The orders the accepted buyers were given (every 201 and 202 names its order)."""
        return [b.body["orderId"] for b in self.accepted]

    @property
    def accepted_per_s(self) -> float:
        return len(self.accepted) / self.wall_s if self.wall_s else 0.0

    def latency_ms(self, quantile: float) -> float:
        latencies = sorted(b.latency_ms for b in self.buyers)
        if len(latencies) < 2:
            return latencies[0] if latencies else 0.0
        return statistics.quantiles(latencies, n=100, method="inclusive")[round(quantile * 100) - 1]

    def errors(self) -> dict[str, int]:
        """Buyers failed by the system: a 5xx, no answer in time, or no connection at all."""
        failed = [b.body.get("error", {}).get("code") for b in self.buyers if b.status == 0]
        return {"5xx": sum(b.status >= 500 for b in self.buyers), "timeouts": failed.count(TIMEOUT),
                "refused": failed.count(REFUSED)}

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for b in self.buyers:
            counts[b.status] = counts.get(b.status, 0) + 1
        return dict(sorted(counts.items()))


async def swarm(url: str, bodies: list[dict[str, Any]], headers: list[dict[str, str]] | None = None,
                progress: "tqdm[NoReturn] | None" = None) -> list[Buyer]:
    """POST every body at once; return one timed result per buyer, in order."""
    start = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:

        async def one(body: dict, header: dict) -> Buyer:
            sent = time.perf_counter()
            try:
                async with session.post(url, json=body, headers=header) as response:
                    status, text = response.status, await response.text()
                payload = _json(text)
            except (TimeoutError, aiohttp.ClientError) as error:
                code = (TIMEOUT if isinstance(error, asyncio.TimeoutError) else
                        REFUSED if isinstance(error, aiohttp.ClientConnectorError) else "CLIENT_ERROR")
                payload, status = {"error": {"code": code, "message": str(error)}}, 0
            if progress is not None:
                progress.update(1)
            done = time.perf_counter()
            return Buyer(body.get("userId", ""), status, (done - sent) * 1000, sent - start, payload or {})

        return await asyncio.gather(*(one(b, h) for b, h in zip(bodies, headers or [{}] * len(bodies), strict=True)))


def _json(text: str) -> dict:
    try:
        return json.loads(text)
    except ValueError:
        return {"text": text[:200]}


def run_buyers(system: str, base_url: str, buyers: int = 1000, product_id: str = "FLASH_SALE_PRODUCT_001",
               users: list[str] | None = None, progress: bool = True, idempotency_keys: bool = False) -> Race:
    """Race `buyers` distinct users (or the given `users`) against `system`: a key of PATHS."""
    users = users or [f"buyer-{i:05d}" for i in range(buyers)]
    bodies = [{"userId": u, "productId": product_id, "quantity": 1} for u in users]
    headers = [{"Idempotency-Key": str(uuid.uuid4())} for _ in users] if idempotency_keys else None
    bar = _progress_bar(len(bodies), system) if progress else None
    start = time.perf_counter()
    results = _run(swarm(base_url + PATHS[system], bodies, headers, bar))
    wall = time.perf_counter() - start
    if bar is not None:
        bar.close()
    return Race(system, results, wall)


def _progress_bar(total: int, label: str) -> "tqdm[NoReturn]":
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"{label} buyers", unit="buyer", leave=False)


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from plain code or from a notebook cell (whose loop is already running)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a fresh loop in a thread; the kernel's stays free
        return pool.submit(asyncio.run, coroutine).result()

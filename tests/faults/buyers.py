"""Buyers who arrive at a steady rate, in the background, so a fault can land in the middle of a sale.

`lab.load.run_buyers` fires every request at once: the sale is over in a second. Here buyer i
sends at `i / rate` seconds, whatever the server does, so the sale lasts `buyers / rate` seconds,
or until `stop()`: buyers who have not arrived by then never do.
"""
import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass

import aiohttp


@dataclass
class Answer:
    user: str
    sent_at: float  # seconds since the sale began
    status: int  # 0 when the request failed: refused, reset, timed out
    order_id: str | None


class SteadyBuyers:
    def __init__(self, gateway_url: str, product_id: str, buyers: int, rate: float, prefix: str = "buyer"):
        self.url, self.product_id, self.rate = f"{gateway_url}/api/orders", product_id, rate
        self.users = [f"{prefix}-{i:05d}" for i in range(buyers)]
        self.answers: list[Answer] = []
        self.started = 0.0
        self._stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._sale()), daemon=True, name="buyers")

    def start(self) -> "SteadyBuyers":
        self.started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped = True
        try:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._stop_event.set)  # wakes the buyers still waiting to arrive
        except RuntimeError:
            pass  # every buyer had arrived: the sale's loop is closed

    def join(self, timeout: float = 120) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the buyers did not finish"

    @property
    def arriving(self) -> bool:
        """Buyers are still being sent: the sale is on."""
        return not self._stopped and time.monotonic() - self.started < len(self.users) / self.rate

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def accepted(self) -> list[str]:
        return [a.order_id for a in self.answers if a.status == 202]

    def statuses(self) -> Counter:
        return Counter(a.status for a in self.answers)

    async def _sale(self) -> None:
        self._loop, self._stop_event = asyncio.get_running_loop(), asyncio.Event()
        if self._stopped:
            self._stop_event.set()
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
            await asyncio.gather(*(self._buy(session, i, user) for i, user in enumerate(self.users)))

    async def _buy(self, session: aiohttp.ClientSession, i: int, user: str) -> None:
        try:  # until it is this buyer's turn, or the sale stops
            await asyncio.wait_for(self._stop_event.wait(), max(0.0, self.started + i / self.rate - time.monotonic()))
            return
        except TimeoutError:
            pass
        sent_at, status, order_id = self.elapsed(), 0, None
        try:
            async with session.post(self.url, json={"userId": user, "productId": self.product_id, "quantity": 1}) as r:
                status = r.status
                if status == 202:
                    order_id = (await r.json())["orderId"]
        except (TimeoutError, aiohttp.ClientError):
            pass
        self.answers.append(Answer(user, sent_at, status, order_id))

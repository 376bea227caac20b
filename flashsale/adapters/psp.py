"""The payment provider's client: every system pays through it (services/psp.py is the provider).

`charge` either returns the provider's receipt or raises: `Declined` (402, final: the same key always gets the
same answer) or `Unavailable` (503, a timeout, no connection: retry with the same key, which is safe, because
a key is charged at most once). One process keeps one `PaymentProvider`: one pool of connections to it.

aiohttp, not httpx, for the charges: measured here, 400 charges at once took 19.7 s through one
httpx.AsyncClient (its pool slows down as requests queue for a connection) and 1.8 s through one aiohttp
session, with the same provider and the same limit of 200 connections.
"""
import json
from typing import Any

import aiohttp
import httpx


class Declined(Exception):
    """402: the provider refused the charge. Retrying with the same key gets the same refusal."""


class Unavailable(Exception):
    """The provider did not answer yes or no: an outage (503), a timeout, no connection."""


class PaymentProvider:
    def __init__(self, url: str, timeout: float):
        self.url, self.timeout = url, aiohttp.ClientTimeout(total=timeout)
        self.session: aiohttp.ClientSession | None = None  # made on first use, on the loop that uses it

    async def charge(self, order_id: str, amount: int, key: str) -> dict:
        """Charge `amount` cents for `order_id`, at most once per `key`: the receipt, or Declined, or Unavailable."""
        return await self._post("/charges", {"orderId": order_id, "amount": amount}, key)

    async def refund(self, order_id: str, key: str) -> dict:
        """Refund the order's succeeded charge, at most once per `key`: the refund, or Unavailable (retry)."""
        return await self._post("/refunds", {"orderId": order_id}, key)

    async def _post(self, path: str, body: dict[str, Any], key: str) -> dict:
        if self.session is None:  # up to 200 charges in flight: the naive shop sends one per buyer, all at once
            self.session = aiohttp.ClientSession(self.url, timeout=self.timeout,
                                                 connector=aiohttp.TCPConnector(limit=200))
        try:
            async with self.session.post(path, json=body, headers={"Idempotency-Key": key}) as answer:
                status, text = answer.status, await answer.text()
        except (TimeoutError, aiohttp.ClientError) as error:  # done or not, we cannot tell
            raise Unavailable(f"no answer from the payment provider ({type(error).__name__})") from None
        if status == 402:
            raise Declined(json.loads(text)["error"]["message"])
        if status >= 500:
            raise Unavailable(f"the payment provider answered {status}")
        if status != 201:  # any other answer is our bug, not the provider's weather
            raise RuntimeError(f"the payment provider answered {status}: {text[:200]}")
        return json.loads(text)

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()


def behaviour(url: str, token: str, **changes: float | None) -> dict[str, Any]:
    """Read the provider's behaviour, or change it (delayMs, failureRate, outageSeconds): what `flashsale psp` does."""
    answer = httpx.post(f"{url}/admin/behaviour", json={k: v for k, v in changes.items() if v is not None},
                        headers={"Authorization": f"Bearer {token}"}, timeout=10)
    answer.raise_for_status()
    return answer.json()


def charges(url: str, order_id: str) -> list[dict]:
    """Every charge the provider holds for one order (a key charges once, so at most one per key)."""
    answer = httpx.get(f"{url}/charges", params={"orderId": order_id}, timeout=10)
    answer.raise_for_status()
    return answer.json()["charges"]

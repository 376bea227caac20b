"""The buyers' side: races against a checkout, their numbers, and the contract's checks afterwards."""
import time

import httpx
import pandas as pd

from flashsale.adapters import psp as provider
from flashsale.harness.checks import Invariants, invariants, payments_done as saga_done, settle
from flashsale.harness.load import Race, run_buyers
from flashsale.harness.races import Outcome, race as one_race
from flashsale.stack.control import Stack


def flash_sale(stack: Stack, system: str, buyers: int = 1000, stock: int = 100,
               scenario: str = "normal") -> Outcome:
    """A new sale of `stock` phones, then `buyers` distinct buyers at once: `naive`, `locked`, `reserve-then-pay`
    or `gateway` (the event-driven system), with a scenario of `flashsale demo` in the middle of the race.

    The same race as `flashsale demo`; for the gateway it also waits until every order is decided.
    """
    return one_race(stack, "event-driven" if system == "gateway" else system, buyers, stock, scenario)


def results(**outcomes: Outcome) -> pd.DataFrame:
    """One row per race, the columns of `flashsale demo`: results(naive=naive, locked=locked)."""
    return pd.DataFrame([{
        "system": name.replace("_", "-"), "sold": o.sold, "oversold": o.oversold, "paid": o.paid,
        "charged twice": o.charged_twice, "accepted/s": round(o.race.accepted_per_s),
        "p50 ms": round(o.race.latency_ms(0.5)), "p99 ms": round(o.race.latency_ms(0.99)),
        "errors": sum(o.race.errors().values()), "lost": o.lost,
        "settled s": None if o.settled_s is None else round(o.settled_s, 2), "sold by the end": o.kept,
        "answers": o.race.statuses(),
    } for name, o in outcomes.items()]).set_index("system")


def buyers(stack: Stack, system: str, n: int, first: int = 0, progress: bool = True) -> Race:
    """`n` more buyers (buyer-<first> onwards) in the current sale, without starting a new one."""
    settings = stack.wired()
    url = settings.gateway_url if system == "gateway" else settings.shop_url
    users = [f"buyer-{i:05d}" for i in range(first, first + n)]
    return run_buyers(system, url, product_id=settings.product_id, users=users, progress=progress)


def check(stack: Stack, *races: Race, timeout: float = 120) -> Invariants:
    """Wait until every order the gateway accepted in `races` is decided, then check the contract's invariants."""
    settings, accepted, sale = stack.wired(), [o for race in races for o in race.order_ids], stack.sale()
    assert sale is not None, "no sale: start one with stack.reset()"
    settle(settings, accepted, timeout)
    return invariants(settings, sale.saleId, accepted)


def payments_done(stack: Stack, timeout: float = 120) -> bool:
    """Wait until payments and orders have read every reservation and payment event: no charge or refund under way
    (a charge waits out a provider's outage, and a late one comes back as a refund)."""
    return saga_done(stack.wired(), timeout)


def order(stack: Stack, user: str = "alice", idempotency_key: str | None = None) -> dict:
    """One buyer, one POST to the gateway: its answer. The same key from the same user names the same order."""
    settings = stack.wired()
    body = {"userId": user, "productId": settings.product_id, "quantity": 1}
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return httpx.post(f"{settings.gateway_url}/api/orders", json=body, headers=headers, timeout=10).json()


def order_status(stack: Stack, order_id: str, until=("CONFIRMED", "CANCELLED"), timeout: float = 30) -> dict:
    """Ask the gateway about an order until its status is one of `until`: what the buyer's page would show."""
    url, deadline = f"{stack.wired().gateway_url}/api/orders/{order_id}", time.monotonic() + timeout
    while True:
        answer = httpx.get(url, timeout=10).json()
        if answer.get("status") in until or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def product(stack: Stack, system: str = "gateway") -> dict:
    """What a system says of the product now: the gateway's Redis counter or the shop's stock row."""
    settings = stack.wired()
    url = f"{settings.gateway_url}/api/products/" if system == "gateway" else f"{settings.shop_url}/products/"
    return httpx.get(url + settings.product_id, timeout=10).json()


def psp(stack: Stack, delay_ms: int | None = None, failure_rate: float | None = None,
        outage_s: float | None = None) -> dict:
    """The payment provider's behaviour, changed as `flashsale psp` changes it; with no argument, only read it."""
    settings = stack.wired()
    return provider.behaviour(settings.psp_url, settings.admin_token, delayMs=delay_ms, failureRate=failure_rate,
                              outageSeconds=outage_s)


def charges(stack: Stack, order_id: str) -> list[dict]:
    """What the payment provider holds for one order: `GET /charges?orderId=`."""
    return provider.charges(stack.wired().psp_url, order_id)

"""The inventory service: the decider of the sale, and its compensation.

order.saved    -> inventory.reserved or inventory.insufficient
payment.failed -> inventory.released (the unit back in stock, once)
order.expired  -> inventory.released (the same: the payment did not come within the deadline)

The rules are `rules.reservation.reserve_all` and `release_all` (one Lua script
per order, atomic and idempotent). On start this service seeds nothing: the
stock counter in Redis is the truth, so a restart can never hand out units
already sold.
"""
from itertools import groupby

from redis import Redis

from flashsale import events as ev
from flashsale.adapters import redis as redis_adapter
from flashsale.adapters.dead_letters import Handler, Postponed
from flashsale.rules.reservation import RELEASED, release_all, reserve_all
from flashsale.sale import sale_by_id
from flashsale.services.runner import run_consumer_service
from flashsale.settings import Settings

TOPICS = [ev.ORDER_EVENTS, ev.PAYMENT_EVENTS]
RELEASES = (ev.PAYMENT_FAILED, ev.ORDER_EXPIRED)  # the saga's compensations: the unit goes back, once per order


def handle(redis: Redis, batch: list[ev.Event]) -> list[ev.Event]:
    out: list[ev.Event] = []
    mine = sorted((e for e in batch if e.type in (ev.ORDER_SAVED, *RELEASES)), key=lambda e: e.saleId)
    for sale_id, group in groupby(mine, key=lambda e: e.saleId):
        events = list(group)
        saved = [e for e in events if e.type == ev.ORDER_SAVED]
        failed = [e for e in events if e.type in RELEASES]
        sale = sale_by_id(redis, sale_id)
        if sale is None:  # a sale we never started: nothing to sell, nothing to give back
            out += [e.next(ev.STOCK_INSUFFICIENT, reason="UNKNOWN_SALE", availableStock=0) for e in saved]
            continue
        reservations = reserve_all(redis, sale.keys, [(e.orderId, e.userId, e.quantity) for e in saved],
                                   sale.perUserLimit) if saved else []
        for event, r in zip(saved, reservations, strict=True):
            if r.reserved:
                out.append(event.next(ev.STOCK_RESERVED, availableStock=r.available_stock))
            elif r.decision != RELEASED:  # released: reserved, paid for in vain, given back; its story is told
                out.append(event.next(ev.STOCK_INSUFFICIENT, reason=r.decision, availableStock=r.available_stock))
        releases = release_all(redis, sale.keys, [(e.orderId, e.userId, e.quantity) for e in failed]) if failed else []
        out += [event.next(ev.STOCK_RELEASED, availableStock=r.available_stock)
                for event, r in zip(failed, releases, strict=True) if r.decision == RELEASED]
    return out


def handler(settings: Settings) -> Handler:
    redis = redis_adapter.connect(settings.redis_url)

    def handle_batch(batch: list[ev.Event]) -> list[ev.Event]:
        try:
            return handle(redis, batch)
        except redis_adapter.UNAVAILABLE as error:  # wait for Redis; dead-letter nothing
            raise Postponed(f"Redis is unavailable: {error}") from error

    return handle_batch


if __name__ == "__main__":
    run_consumer_service("inventory", TOPICS, handler)

"""The inventory service: order.saved -> inventory.reserved or inventory.insufficient.

The rule itself is `rules.reservation.reserve_all` (one Lua script per order,
atomic and idempotent). On start this service seeds nothing: the stock counter
in Redis is the truth, so a restart can never hand out units already sold.
"""
from itertools import groupby

from flashsale import events as ev
from flashsale.adapters import kafka, redis as redis_adapter
from flashsale.rules.reservation import reserve_all
from flashsale.sale import sale_by_id
from flashsale.services import configure_logging, tune_gc
from flashsale.settings import Settings


def handle(redis, batch: list[ev.Event]) -> list[ev.Event]:
    out = []
    saved = sorted((e for e in batch if e.type == ev.ORDER_SAVED), key=lambda e: e.saleId)
    for sale_id, orders in groupby(saved, key=lambda e: e.saleId):
        orders = list(orders)
        sale = sale_by_id(redis, sale_id)
        if sale is None:  # a sale we never started: nothing to sell
            out += [e.next(ev.STOCK_INSUFFICIENT, reason="UNKNOWN_SALE", availableStock=0) for e in orders]
            continue
        reservations = reserve_all(redis, sale.keys, [(e.orderId, e.userId, e.quantity) for e in orders],
                                   sale.perUserLimit)
        for event, r in zip(orders, reservations):
            if r.reserved:
                out.append(event.next(ev.STOCK_RESERVED, availableStock=r.available_stock))
            else:
                out.append(event.next(ev.STOCK_INSUFFICIENT, reason=r.decision, availableStock=r.available_stock))
    return out


def main() -> None:
    configure_logging("inventory")
    tune_gc()
    settings = Settings()
    redis = redis_adapter.connect(settings.redis_url)
    kafka.run_consumer(settings, "inventory", [ev.ORDER_EVENTS], lambda batch: handle(redis, batch))


if __name__ == "__main__":
    main()

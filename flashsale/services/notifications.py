"""The notification service: order and inventory events -> messages for the browsers.

It keeps no state, so redelivery only repeats a message the browser already shows.
Every gateway instance reads notification.events and fans them out over WebSocket.

Stock figures are read, not taken from the events: a unit given back after a failed
payment makes the stock rise again, so the events of a batch (from three partitions,
in no one order) cannot say which of their figures is the newest. The decider's
counter, read once the batch is in, can.
"""
from collections.abc import Callable

from flashsale import events as ev
from flashsale.adapters import redis as redis_adapter
from flashsale.adapters.dead_letters import Handler, Postponed
from flashsale.rules.reservation import SaleKeys
from flashsale.services.runner import run_consumer_service
from flashsale.settings import Settings

TOPICS = [ev.ORDER_EVENTS, ev.INVENTORY_EVENTS]

ORDER_STATUS = {ev.ORDER_SAVED: "PENDING", ev.ORDER_RESERVED: "RESERVED", ev.ORDER_CONFIRMED: "CONFIRMED",
                ev.ORDER_CANCELLED: "CANCELLED"}


def handle(batch: list[ev.Event], stock_of: Callable[[int], int]) -> list[ev.Notification]:
    """`stock_of(saleId)`: the sale's available stock now."""
    out = []
    moved: dict[tuple[str, int], None] = {}  # (product, sale) whose stock the batch changed, in order
    for event in batch:
        if event.type in ORDER_STATUS:
            out.append(ev.Notification(type=ev.ORDER_UPDATE, data={
                "orderId": event.orderId, "status": ORDER_STATUS[event.type],
                "reason": event.reason, "userId": event.userId,
                **({"refunded": True} if event.refunded else {})}))  # paid after it expired: the money is back
        elif event.availableStock is not None:
            moved[(event.productId, event.saleId)] = None
    # saleId lets a browser ignore a late figure from a sale that has since been reset.
    out += [ev.Notification(type=ev.STOCK_UPDATE, data={"productId": product, "saleId": sale,
                                                        "availableStock": max(stock_of(sale), 0)})
            for product, sale in moved]
    return out


def handler(settings: Settings) -> Handler:
    redis = redis_adapter.connect(settings.redis_url)

    def handle_batch(batch: list[ev.Event]) -> list[ev.Notification]:
        try:
            return handle(batch, lambda sale: int(redis.get(SaleKeys(sale).stock) or 0))
        except redis_adapter.UNAVAILABLE as error:  # wait for Redis; dead-letter nothing
            raise Postponed(f"Redis is unavailable: {error}") from error

    return handle_batch


if __name__ == "__main__":
    run_consumer_service("notifications", TOPICS, handler)

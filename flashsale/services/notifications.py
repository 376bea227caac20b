"""The notification service: order and inventory events -> messages for the browsers.

It keeps no state, so redelivery only repeats a message the browser already shows.
Every gateway instance reads notification.events and fans them out over WebSocket.
"""
from flashsale import events as ev
from flashsale.adapters import kafka
from flashsale.services import configure_logging, tune_gc
from flashsale.settings import Settings

ORDER_STATUS = {ev.ORDER_SAVED: "PENDING", ev.ORDER_CONFIRMED: "CONFIRMED", ev.ORDER_CANCELLED: "CANCELLED"}


def handle(batch: list[ev.Event]) -> list[ev.Notification]:
    out = []
    lowest_stock: dict[tuple[str, int], int] = {}  # (product, sale) -> stock
    for event in batch:
        if event.type in ORDER_STATUS:
            out.append(ev.Notification(type=ev.ORDER_UPDATE, data={
                "orderId": event.orderId, "status": ORDER_STATUS[event.type],
                "reason": event.reason, "userId": event.userId}))
        elif event.availableStock is not None:
            # Stock only falls during a sale, so the lowest figure of a batch is the newest.
            key = (event.productId, event.saleId)
            lowest_stock[key] = min(event.availableStock, lowest_stock.get(key, 1 << 62))
    # saleId lets a browser ignore a late figure from a sale that has since been reset.
    out += [ev.Notification(type=ev.STOCK_UPDATE, data={"productId": product, "saleId": sale,
                                                        "availableStock": max(stock, 0)})
            for (product, sale), stock in lowest_stock.items()]
    return out


def main() -> None:
    configure_logging("notifications")
    tune_gc()
    settings = Settings()
    kafka.run_consumer(settings, "notifications", [ev.ORDER_EVENTS, ev.INVENTORY_EVENTS], handle)


if __name__ == "__main__":
    main()

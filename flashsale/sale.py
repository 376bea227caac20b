"""The sale: start one, find the current one, count it, rebuild it in Redis.

A sale lives in PostgreSQL (the record) and in Redis (the hot counters the
gateway and inventory use). Each new sale gets a new id and fresh Redis keys,
so events of an old sale that arrive late cannot touch the new one.
"""
import json
from dataclasses import asdict, dataclass

from psycopg import Connection
from redis import Redis

from flashsale.events import PAYMENT_FAILED_REASON
from flashsale.readable import Readable
from flashsale.rules.reservation import RELEASED, RESERVED, SaleKeys

CURRENT = "sale:current"


@dataclass(frozen=True)
class Sale:
    saleId: int
    productId: str
    name: str
    initialStock: int
    perUserLimit: int

    @property
    def keys(self) -> SaleKeys:
        return SaleKeys(self.saleId)

    @classmethod
    def from_json(cls, raw: bytes | str) -> "Sale":
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class SaleCounts(Readable):
    """What `flashsale status` and the tests report of the current sale: its stock, and its orders by status."""
    saleId: int
    productId: str
    initialStock: int
    availableStock: int
    confirmed: int
    confirmedUnits: int
    cancelled: int
    pending: int
    reserved: int

    @property
    def settled(self) -> int:
        """Orders final: CONFIRMED or CANCELLED."""
        return self.confirmed + self.cancelled


def start_sale(pg: Connection, redis: Redis, product_id: str, name: str, stock: int, per_user_limit: int) -> Sale:
    """A new sale for both systems: the event-driven one (Redis) and the sync shop (its stock row)."""
    with pg.transaction():
        [sale_id] = pg.execute("INSERT INTO sales (product_id, product_name, initial_stock, per_user_limit) "
                               "VALUES (%s, %s, %s, %s) RETURNING sale_id",
                               (product_id, name, stock, per_user_limit)).fetchall()[0]
        pg.execute("INSERT INTO shop_stock VALUES (%s, %s, %s, %s) ON CONFLICT (product_id) DO UPDATE "
                   "SET sale_id = excluded.sale_id, initial_stock = excluded.initial_stock, "
                   "available_stock = excluded.available_stock", (product_id, sale_id, stock, stock))
    sale = Sale(sale_id, product_id, name, stock, per_user_limit)
    redis.set(sale.keys.stock, stock)
    redis.set(f"sale:{sale_id}", json.dumps(asdict(sale)))  # inventory looks a sale up by the id its events carry
    redis.set(CURRENT, json.dumps(asdict(sale)))  # last: the gateway switches to the new sale here
    return sale


def current_sale(redis: Redis) -> Sale | None:
    raw = redis.get(CURRENT)
    return Sale.from_json(raw) if raw else None


def sale_by_id(redis: Redis, sale_id: int) -> Sale | None:
    raw = redis.get(f"sale:{sale_id}")
    return Sale.from_json(raw) if raw else None


def available_stock(redis: Redis, sale: Sale) -> int:
    return int(redis.get(sale.keys.stock) or 0)


def sale_counts(pg: Connection, redis: Redis, sale: Sale) -> SaleCounts:
    """The sale's stock, and its orders by status."""
    rows = pg.execute("SELECT status, count(*), coalesce(sum(quantity), 0) FROM orders WHERE sale_id = %s "
                      "GROUP BY status", (sale.saleId,)).fetchall()
    by_status = {status: (count, units) for status, count, units in rows}
    return SaleCounts(sale.saleId, sale.productId, sale.initialStock, available_stock(redis, sale),
                      confirmed=by_status.get("CONFIRMED", (0, 0))[0],
                      confirmedUnits=by_status.get("CONFIRMED", (0, 0))[1],
                      cancelled=by_status.get("CANCELLED", (0, 0))[0], pending=by_status.get("PENDING", (0, 0))[0],
                      reserved=by_status.get("RESERVED", (0, 0))[0])


def reconcile(pg: Connection, redis: Redis) -> Sale | None:
    """Rebuild the current sale in Redis from PostgreSQL, after Redis came back without it (a lost disk).

    The orders table knows every decision inventory made, but only once none is in flight: the inventory
    service is stopped and the orders service has applied every inventory.* event (its group has caught
    up on inventory.events). Then a CONFIRMED or RESERVED row is a reserved unit (a RESERVED one may still
    be released, when inventory reads its payment.failed), a row CANCELLED for a failed payment a released
    unit, another CANCELLED row a refusal, and a PENDING row an order that inventory will decide when it
    starts again, on the rebuilt stock.
    `Stack.restart("redis")` keeps to that window; called outside it, a decision not yet in the table is
    forgotten and its unit could be sold twice. Only the current sale is rebuilt: late events of older
    sales find no sale and are refused.
    """
    row = pg.execute("SELECT sale_id, product_id, product_name, initial_stock, per_user_limit FROM sales "
                     "ORDER BY sale_id DESC LIMIT 1").fetchone()
    if row is None:
        return None
    sale = Sale(*row)
    decided = pg.execute("SELECT order_id, user_id, quantity, status, reason FROM orders "
                         "WHERE sale_id = %s AND status <> 'PENDING'", (sale.saleId,)).fetchall()
    held = ("CONFIRMED", "RESERVED")
    decisions = {order: RESERVED if status in held else RELEASED if reason == PAYMENT_FAILED_REASON
                 else reason or status for order, _, _, status, reason in decided}
    user_units: dict[str, int] = {}
    for _, user, quantity, status, _ in decided:
        if status in held:
            user_units[user] = user_units.get(user, 0) + quantity
    keys = sale.keys
    with redis.pipeline(transaction=True) as pipe:  # all at once; the current-sale pointer last
        pipe.delete(keys.decisions, keys.user_units)
        pipe.set(keys.stock, sale.initialStock - sum(user_units.values()))
        if decisions:
            pipe.hset(keys.decisions, mapping=decisions)
        if user_units:
            pipe.hset(keys.user_units, mapping={user: units for user, units in user_units.items()})  # redis-py's type
        pipe.set(f"sale:{sale.saleId}", json.dumps(asdict(sale)))
        pipe.set(CURRENT, json.dumps(asdict(sale)))
        pipe.execute()
    return sale

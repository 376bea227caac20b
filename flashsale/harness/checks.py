"""The contract's invariants, checked against the real servers after a race, a fault or a replay."""
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import psycopg

from flashsale.adapters import kafka, postgres, redis as redis_adapter
from flashsale.brokers import choose
from flashsale.events import INVENTORY_EVENTS, PAYMENT_EVENTS, PAYMENT_FAILED_REASON, PAYMENT_TIMEOUT_REASON
from flashsale.rules.reservation import PER_USER_LIMIT, RELEASED
from flashsale.sale import available_stock, sale_by_id
from flashsale.settings import Settings

FINAL = ("CONFIRMED", "CANCELLED")


@dataclass
class Invariants:
    saleId: int
    initialStock: int
    availableStock: int
    confirmedUnits: int
    confirmed: int
    cancelled: int
    pending: int
    lost: int  # accepted (202) orders not CONFIRMED or CANCELLED
    overLimitUsers: int  # users with more confirmed units than the per-user limit
    reserved: int = 0  # a unit held, the payment not yet known
    paid: int = 0  # successful charges of the sale's orders
    unpaid: int = 0  # CONFIRMED orders without a successful charge
    chargedTwice: int = 0  # orders with more than one successful charge
    paidButCancelled: int = 0  # orders not CONFIRMED with a successful charge not refunded: money taken, no phone
    notReleased: int = 0  # orders cancelled for a failed or late payment whose unit inventory did not give back
    expired: int = 0  # orders cancelled PAYMENT_TIMEOUT: not paid within the payment deadline
    refunded: int = 0  # late charges given back (an order that expired, then was paid)
    refundedTwice: int = 0  # orders with more than one refund
    overdue: int = 0  # orders RESERVED longer than the payment deadline plus the time to settle

    @property
    def oversold(self) -> int:
        return max(0, self.confirmedUnits - self.initialStock)

    @property
    def conserved(self) -> bool:
        return self.initialStock == self.availableStock + self.confirmedUnits

    @property
    def sold_right(self) -> bool:
        """Invariants 1-5, once settled: no oversell, conservation, nothing lost, one unit per buyer at most."""
        return (self.oversold == 0 and self.availableStock >= 0 and self.conserved and self.lost == 0
                and self.overLimitUsers == 0 and self.pending == 0 and self.reserved == 0)

    @property
    def paid_once(self) -> bool:
        """Invariant 6: every CONFIRMED order charged exactly once, nobody charged twice, released units back."""
        return self.unpaid == 0 and self.chargedTwice == 0 and self.paidButCancelled == 0 and self.notReleased == 0

    @property
    def nobody_pays_for_nothing(self) -> bool:
        """Invariant 7: every successful charge belongs to a CONFIRMED order, or was refunded, once."""
        return self.paidButCancelled == 0 and self.refundedTwice == 0

    @property
    def nobody_waits_forever(self) -> bool:
        """Invariant 8: no order stays RESERVED past the payment deadline plus the time to settle."""
        return self.overdue == 0

    @property
    def ok(self) -> bool:
        return self.sold_right and self.paid_once and self.nobody_pays_for_nothing and self.nobody_waits_forever

    def as_dict(self) -> dict:
        return {**asdict(self), "oversold": self.oversold, "conserved": self.conserved, "ok": self.ok}


def unsettled(settings: Settings, order_ids: list[str]) -> int:
    """How many of these orders are not yet CONFIRMED or CANCELLED."""
    with postgres.connect(settings.database_url) as pg:
        done = postgres.scalar(pg, "SELECT count(*) FROM orders WHERE order_id = ANY(%s) "
                                   "AND status IN ('CONFIRMED', 'CANCELLED')", (list(order_ids),))
    return len(set(order_ids)) - done


def refused_for_limit(settings: Settings, sale_id: int) -> int:
    """Orders of a sale cancelled for the per-user limit: none when every order came from a buyer of its own."""
    with postgres.connect(settings.database_url) as pg:
        return postgres.scalar(pg, "SELECT count(*) FROM orders WHERE sale_id = %s AND reason = %s",
                               (sale_id, PER_USER_LIMIT))


def settle(settings: Settings, order_ids: list[str], timeout: float = 60) -> float | None:
    """Seconds until every order reached a final state, or None if some had not after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if unsettled(settings, order_ids) == 0:
                return time.monotonic() - start
        except psycopg.OperationalError:
            pass  # PostgreSQL is down or frozen (`flashsale pause postgres`): ask again until the timeout
        time.sleep(0.05)
    return None


@dataclass(frozen=True)
class OrderPayments:
    """One order of a sale, and what the provider holds for it."""
    orderId: str
    status: str
    reason: str | None
    charges: int  # successful charges not refunded
    refunds: int
    waitedS: float  # seconds since the row last moved: for a RESERVED row, since it was reserved


def payment_counts(orders: Sequence[OrderPayments], deadline_s: float, settle_s: float) -> dict[str, int]:
    """Invariants 6-8 counted over a sale's orders: a pure function, so each wrong state has a unit test."""
    return {"paid": sum(o.charges for o in orders),
            "unpaid": sum(o.status == "CONFIRMED" and o.charges == 0 for o in orders),
            "chargedTwice": sum(o.charges + o.refunds > 1 for o in orders),
            "paidButCancelled": sum(o.status != "CONFIRMED" and o.charges > 0 for o in orders),
            "expired": sum(o.reason == PAYMENT_TIMEOUT_REASON for o in orders),
            "refunded": sum(o.refunds for o in orders), "refundedTwice": sum(o.refunds > 1 for o in orders),
            "overdue": sum(o.status == "RESERVED" and o.waitedS > deadline_s + settle_s for o in orders)}


# Who carries a payment to its end: a charge or a refund under way is a message payments has not committed yet,
# and its outcome one that orders has not.
SAGA_READERS = {"payments": [INVENTORY_EVENTS, PAYMENT_EVENTS], "orders": [INVENTORY_EVENTS, PAYMENT_EVENTS]}


def payments_done(settings: Settings, timeout: float = 60) -> bool:
    """Wait until payments and orders have read every reservation and payment event, twice in a row (a refund due
    comes back to payments after orders read the late charge): then no charge or refund is under way."""
    deadline, quiet, waits = time.monotonic() + timeout, 0, choose(settings).reading
    while quiet < 2 and time.monotonic() < deadline:
        left = sum(kafka.unread(settings.kafka_bootstrap_servers, group, topics, settings.partitions, waits)
                   for group, topics in SAGA_READERS.items())
        quiet = quiet + 1 if left == 0 else 0
        if left:
            time.sleep(0.1)
    return quiet == 2


def invariants(settings: Settings, sale_id: int, accepted_ids: Sequence[str] = (), settle_s: float = 30) -> Invariants:
    """The invariants of one sale now; `settle_s`: how long past the payment deadline an order may take to settle."""
    redis = redis_adapter.connect(settings.redis_url)
    sale = sale_by_id(redis, sale_id)
    if sale is None:
        raise LookupError(f"no sale {sale_id} in Redis")
    with postgres.connect(settings.database_url) as pg:
        counts: dict[str, int] = dict(pg.execute(
            "SELECT status, count(*) FROM orders WHERE sale_id = %s GROUP BY status", (sale_id,)).fetchall())
        units = postgres.scalar(pg, "SELECT coalesce(sum(quantity), 0) FROM orders WHERE sale_id = %s "
                                    "AND status = 'CONFIRMED'", (sale_id,))
        over_limit = postgres.scalar(pg, "SELECT count(*) FROM (SELECT user_id FROM orders WHERE sale_id = %s AND "
                                         "status = 'CONFIRMED' GROUP BY user_id HAVING sum(quantity) > %s) o",
                                     (sale_id, sale.perUserLimit))
        final = postgres.scalar(pg, "SELECT count(*) FROM orders WHERE order_id = ANY(%s) "
                                    "AND status IN ('CONFIRMED', 'CANCELLED')", (list(set(accepted_ids)),))
        payments = pg.execute(PAYMENTS, (sale_id,)).fetchall()
    orders = [OrderPayments(*row) for row in payments]
    released_ones = [o.orderId for o in orders if o.reason in (PAYMENT_FAILED_REASON, PAYMENT_TIMEOUT_REASON)]
    released = redis.hmget(sale.keys.decisions, released_ones) if released_ones else []
    return Invariants(sale_id, sale.initialStock, available_stock(redis, sale), units, counts.get("CONFIRMED", 0),
                      counts.get("CANCELLED", 0), counts.get("PENDING", 0), len(set(accepted_ids)) - final, over_limit,
                      reserved=counts.get("RESERVED", 0), notReleased=sum(d != RELEASED.encode() for d in released),
                      **payment_counts(orders, settings.payment_deadline_s, settle_s))


# Each order of a sale with its successful charges and its refunds at the provider (its ledger shares the server).
PAYMENTS = """
    SELECT o.order_id, o.status, o.reason, count(c.charge_id) FILTER (WHERE c.status = 'succeeded'),
           count(r.refund_id), extract(epoch FROM now() - o.updated_at)::float
    FROM orders o LEFT JOIN charges c ON c.order_id = o.order_id LEFT JOIN refunds r ON r.charge_id = c.charge_id
    WHERE o.sale_id = %s GROUP BY o.order_id, o.status, o.reason, o.updated_at"""


def shop_sale(settings: Settings, sale_id: int, checkout: str) -> dict:
    """One checkout of the sync shop in one sale: units sold, successful charges, orders charged twice, and
    reservations never settled (a reserve-then-pay shop that died between reserving and paying)."""
    with postgres.connect(settings.database_url) as pg:
        [(sold, paid, twice, stuck)] = pg.execute("""
            SELECT coalesce(sum(o.quantity) FILTER (WHERE o.status = 'CONFIRMED'), 0)::int,
                   coalesce(sum(c.paid), 0)::int, count(*) FILTER (WHERE c.paid > 1),
                   count(*) FILTER (WHERE o.status = 'RESERVED')
            FROM shop_orders o LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE status = 'succeeded') AS paid
                                                  FROM charges WHERE order_id = o.order_id) c ON true
            WHERE o.sale_id = %s AND o.checkout = %s""", (sale_id, checkout)).fetchall()
    return {"sold": sold, "paid": paid, "chargedTwice": twice, "lost": stuck}

"""The contract's invariants, checked against the real servers after a race, a fault or a replay."""
import time
from dataclasses import asdict, dataclass

from flashsale.adapters import postgres, redis as redis_adapter
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

    @property
    def oversold(self) -> int:
        return max(0, self.confirmedUnits - self.initialStock)

    @property
    def conserved(self) -> bool:
        return self.initialStock == self.availableStock + self.confirmedUnits

    @property
    def ok(self) -> bool:
        return (self.oversold == 0 and self.availableStock >= 0 and self.conserved and self.lost == 0
                and self.overLimitUsers == 0 and self.pending == 0)

    def as_dict(self) -> dict:
        return {**asdict(self), "oversold": self.oversold, "conserved": self.conserved, "ok": self.ok}


def unsettled(settings: Settings, order_ids: list[str]) -> int:
    """How many of these orders are not yet CONFIRMED or CANCELLED."""
    with postgres.connect(settings.database_url) as pg:
        done = pg.execute("SELECT count(*) FROM orders WHERE order_id = ANY(%s) AND status IN ('CONFIRMED', 'CANCELLED')",
                          (list(order_ids),)).fetchone()[0]
    return len(set(order_ids)) - done


def settle(settings: Settings, order_ids: list[str], timeout: float = 60) -> float | None:
    """Seconds until every order reached a final state, or None if some had not after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if unsettled(settings, order_ids) == 0:
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def invariants(settings: Settings, sale_id: int, accepted_ids: list[str] = ()) -> Invariants:
    redis = redis_adapter.connect(settings.redis_url)
    sale = sale_by_id(redis, sale_id)
    with postgres.connect(settings.database_url) as pg:
        counts = dict(pg.execute("SELECT status, count(*) FROM orders WHERE sale_id = %s GROUP BY status",
                                 (sale_id,)).fetchall())
        units = pg.execute("SELECT coalesce(sum(quantity), 0) FROM orders WHERE sale_id = %s AND status = 'CONFIRMED'",
                           (sale_id,)).fetchone()[0]
        over_limit = pg.execute("SELECT count(*) FROM (SELECT user_id FROM orders WHERE sale_id = %s AND "
                                "status = 'CONFIRMED' GROUP BY user_id HAVING sum(quantity) > %s) o",
                                (sale_id, sale.perUserLimit)).fetchone()[0]
        final = pg.execute("SELECT count(*) FROM orders WHERE order_id = ANY(%s) AND status IN ('CONFIRMED', 'CANCELLED')",
                           (list(set(accepted_ids)),)).fetchone()[0]
    return Invariants(sale_id, sale.initialStock, available_stock(redis, sale), units, counts.get("CONFIRMED", 0),
                      counts.get("CANCELLED", 0), counts.get("PENDING", 0), len(set(accepted_ids)) - final, over_limit)

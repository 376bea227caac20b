"""PostgreSQL: the schema, and connections. The orders table is the read model of the sale; the charges table
is the payment provider's own."""
from typing import Any, LiteralString

import psycopg
import psycopg_pool
from psycopg.abc import Params

SCHEMA = """
CREATE TABLE IF NOT EXISTS sales (
    sale_id        serial PRIMARY KEY,
    product_id     text NOT NULL,
    product_name   text NOT NULL,
    initial_stock  integer NOT NULL,
    per_user_limit integer NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS orders (
    order_id   text PRIMARY KEY,
    sale_id    integer NOT NULL,
    user_id    text NOT NULL,
    product_id text NOT NULL,
    quantity   integer NOT NULL,
    status     text NOT NULL CONSTRAINT orders_status_check
               CHECK (status IN ('PENDING', 'RESERVED', 'CONFIRMED', 'CANCELLED')),
    reason     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- By sale alone, with room on each page: an UPDATE that changes no indexed column and finds room on the row's
-- page is HOT (measured without the deadline's indexes below: 204,124 of 297,000 status updates HOT, 0 with
-- (sale_id, status); docs/benchmarks.md). The payment deadline's partial indexes name status and updated_at, so
-- status updates are not HOT now: the sweep's index was worth more than HOT (a full scan every second otherwise).
CREATE INDEX IF NOT EXISTS orders_of_sale ON orders (sale_id);
DROP INDEX IF EXISTS orders_by_sale;
ALTER TABLE orders SET (fillfactor = 70);
-- The synchronous shop keeps its own stock row and orders, on the same server.
CREATE TABLE IF NOT EXISTS shop_stock (
    product_id      text PRIMARY KEY,
    sale_id         integer NOT NULL,
    initial_stock   integer NOT NULL,
    available_stock integer NOT NULL
);
CREATE TABLE IF NOT EXISTS shop_orders (
    order_id   text PRIMARY KEY,
    sale_id    integer NOT NULL,
    user_id    text NOT NULL,
    product_id text NOT NULL,
    quantity   integer NOT NULL,
    checkout   text NOT NULL,
    status     text NOT NULL DEFAULT 'CONFIRMED',  -- reserve-then-pay: RESERVED, then CONFIRMED or RELEASED
    created_at timestamptz NOT NULL DEFAULT now()
);
-- The payment provider's ledger (services/psp.py). The unique key is the whole of "never charge twice": the
-- first answer for a key is stored, and every repeat of that key gets it back.
CREATE TABLE IF NOT EXISTS charges (
    charge_id       text PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    order_id        text NOT NULL,
    amount          bigint NOT NULL,
    status          text NOT NULL CONSTRAINT charges_status_check
                    CHECK (status IN ('succeeded', 'declined', 'refunded')),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS charges_by_order ON charges (order_id);
-- A charge is refunded once: one refund per charge, and a key's first refund is its answer for good.
CREATE TABLE IF NOT EXISTS refunds (
    refund_id       text PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    order_id        text NOT NULL,
    charge_id       text NOT NULL UNIQUE REFERENCES charges,
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- The saga's deadline (services/expiry.py): an expired order is announced once the broker has it (an outbox flag),
-- and a late charge's refund is recorded on its row.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS announced boolean NOT NULL DEFAULT true;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS refunded boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS orders_reserved_since ON orders (updated_at) WHERE status = 'RESERVED';
CREATE INDEX IF NOT EXISTS orders_unannounced ON orders (updated_at) WHERE NOT announced;
-- A home made before the payment saga: orders may be RESERVED, shop orders have a status.
ALTER TABLE shop_orders ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'CONFIRMED';
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'orders_status_check'
                   AND pg_get_constraintdef(oid) LIKE '%RESERVED%') THEN
        ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_status_check;
        ALTER TABLE orders ADD CONSTRAINT orders_status_check
            CHECK (status IN ('PENDING', 'RESERVED', 'CONFIRMED', 'CANCELLED'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'charges_status_check'
                   AND pg_get_constraintdef(oid) LIKE '%refunded%') THEN
        ALTER TABLE charges DROP CONSTRAINT IF EXISTS charges_status_check;
        ALTER TABLE charges ADD CONSTRAINT charges_status_check CHECK (status IN ('succeeded', 'declined', 'refunded'));
    END IF;
END $$;
"""


def connect(url: str, **kwargs: Any) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, connect_timeout=5, **kwargs)


def scalar(conn: psycopg.Connection, query: LiteralString, params: Params | None = None) -> Any:
    """The one value of a query that always returns one row, such as `SELECT count(*) ...`."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise LookupError(f"no row from {query!r}")
    return row[0]


def pool(url: str, size: int) -> psycopg_pool.ConnectionPool:
    """Connections that are checked before use and replaced if the server restarted."""
    return psycopg_pool.ConnectionPool(url, min_size=size, max_size=size, kwargs={"autocommit": True},
                                       check=psycopg_pool.ConnectionPool.check_connection, open=True)


# psycopg_pool retries a lost connection after 1, 2, 4, 8 … s, for up to 5 minutes. Measured in the fault suite:
# after PostgreSQL restarted, the payment provider's pool was still asleep in that backoff minutes later, and every
# charge got 503. Giving up after 10 s lets the next request that waits grow the pool again, from a 1 s delay.
RECONNECT_GIVE_UP_S = 10


def async_pool(url: str, min_size: int, max_size: int) -> psycopg_pool.AsyncConnectionPool:
    """An HTTP service's pool: requests wait their turn; after a restart of PostgreSQL it reconnects within ~10 s.

    Autocommit, as the consumers' pool: a statement is its own transaction, and `conn.transaction()` says where
    more than one must be. Without it every use was three round trips (BEGIN, the statement, COMMIT); profiled
    with py-spy at 600 orders/s, BEGIN and COMMIT took a third of the payment provider's time.
    """
    return psycopg_pool.AsyncConnectionPool(url, min_size=min_size, max_size=max_size, open=False,
                                            kwargs={"autocommit": True}, reconnect_timeout=RECONNECT_GIVE_UP_S)


def ensure_schema(url: str) -> None:
    with connect(url) as conn:
        conn.execute("SELECT pg_advisory_lock(42)")  # two starters at once must not race on DDL
        conn.execute(SCHEMA)
        conn.execute("SELECT pg_advisory_unlock(42)")

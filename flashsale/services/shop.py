"""The synchronous shop: the checkout most of us would write first, and its fix.

POST /naive/orders   read the stock, pay, write stock - 1. Between the read and
                     the write, hundreds of other buyers read the same number:
                     they all "buy" the same phones. It oversells.
POST /locked/orders  take the unit and record the order in one statement (a
                     guarded UPDATE whose row lock is held until commit), then
                     pay. Correct, but buyers queue behind the lock: that is
                     its price.
"""
import asyncio
import uuid
from contextlib import asynccontextmanager

import psycopg_pool
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from flashsale.services.http import OrderRequest
from flashsale.services.http import ApiError, BodyLimit, install_error_handlers, serve
from flashsale.settings import Settings

settings = Settings()
PAYMENT = settings.payment_delay_ms / 1000


@asynccontextmanager
async def lifespan(app: FastAPI):
    # Sized for the machine: two connections per core. Every locked checkout queues on one row, so more
    # connections only add waiters inside PostgreSQL (measured: 16 gave 740-890 checkouts/s, 4 gave 1,100-1,600).
    app.state.db = psycopg_pool.AsyncConnectionPool(settings.database_url, min_size=4, max_size=4, open=False)
    await app.state.db.open(wait=True, timeout=10)
    yield
    await app.state.db.close()


app = FastAPI(title="flashsale sync shop", lifespan=lifespan)
install_error_handlers(app)
app.add_middleware(BodyLimit, limit=settings.max_body_bytes)


@app.post("/naive/orders", status_code=201)
async def naive_checkout(order: OrderRequest, request: Request):
    async with request.app.state.db.connection() as conn:
        row = await (await conn.execute("SELECT available_stock, sale_id FROM shop_stock WHERE product_id = %s",
                                        (order.productId,))).fetchone()
    if row is None:
        raise ApiError(404, "UNKNOWN_PRODUCT", f"No product {order.productId!r}.")
    available, sale_id = row
    if available < order.quantity:
        raise ApiError(409, "SOLD_OUT", "Sold out.")
    await asyncio.sleep(PAYMENT)  # the race window: everyone else reads the same `available` meanwhile
    async with request.app.state.db.connection() as conn, conn.transaction():
        await conn.execute("UPDATE shop_stock SET available_stock = %s WHERE product_id = %s",
                           (available - order.quantity, order.productId))
        return await record(conn, order, sale_id, "naive")


# Take the unit and record the order in one statement: the row lock is held for one round trip, not two.
TAKE_AND_RECORD = """
    WITH taken AS (
        UPDATE shop_stock SET available_stock = available_stock - %(quantity)s
        WHERE product_id = %(product)s AND available_stock >= %(quantity)s RETURNING sale_id)
    INSERT INTO shop_orders (order_id, sale_id, user_id, product_id, quantity, checkout)
    SELECT %(order)s, sale_id, %(user)s, %(product)s, %(quantity)s, 'locked' FROM taken
    RETURNING order_id"""


@app.post("/locked/orders", status_code=201)
async def locked_checkout(order: OrderRequest, request: Request):
    order_id = str(uuid.uuid4())
    async with request.app.state.db.connection() as conn, conn.transaction():
        row = await (await conn.execute(TAKE_AND_RECORD, {
            "order": order_id, "user": order.userId, "product": order.productId, "quantity": order.quantity})).fetchone()
        if row is None:
            known = await (await conn.execute("SELECT 1 FROM shop_stock WHERE product_id = %s",
                                              (order.productId,))).fetchone()
            raise ApiError(409, "SOLD_OUT", "Sold out.") if known else \
                ApiError(404, "UNKNOWN_PRODUCT", f"No product {order.productId!r}.")
        await asyncio.sleep(PAYMENT)  # paying while holding the row lock: the next buyer waits
    return {"orderId": order_id, "status": "CONFIRMED"}


async def record(conn, order: OrderRequest, sale_id: int, checkout: str) -> dict:
    order_id = str(uuid.uuid4())
    await conn.execute("INSERT INTO shop_orders (order_id, sale_id, user_id, product_id, quantity, checkout) "
                       "VALUES (%s, %s, %s, %s, %s, %s)",
                       (order_id, sale_id, order.userId, order.productId, order.quantity, checkout))
    return {"orderId": order_id, "status": "CONFIRMED"}


@app.get("/products/{product_id}")
async def product(product_id: str, request: Request):
    async with request.app.state.db.connection() as conn:
        row = await (await conn.execute(
            "SELECT s.initial_stock, s.available_stock, "
            "(SELECT coalesce(sum(quantity), 0) FROM shop_orders o WHERE o.sale_id = s.sale_id) "
            "FROM shop_stock s WHERE s.product_id = %s", (product_id,))).fetchone()
    if row is None:
        raise ApiError(404, "UNKNOWN_PRODUCT", f"No product {product_id!r}.")
    return {"productId": product_id, "initialStock": row[0], "availableStock": row[1], "sold": row[2]}


@app.get("/healthz")
async def healthz(request: Request):
    async with request.app.state.db.connection(timeout=2) as conn:
        await conn.execute("SELECT 1")
    return {"healthy": True}


def main() -> None:
    serve(app, settings, settings.shop_port)


if __name__ == "__main__":
    main()

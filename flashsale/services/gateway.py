"""The gateway: HTTP in, `order.created` out, WebSocket updates back.

POST /api/orders answers 202 only once the broker has acknowledged the event
(the seed's fire-and-forget lost orders whenever Kafka was down), 503 when it
cannot. It decides nothing about stock: inventory does, from the event.
"""
import asyncio
import functools
import html
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import Body, Depends, FastAPI, Header, Request, WebSocket, WebSocketDisconnect
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, StringConstraints

from flashsale import events as ev
from flashsale.adapters import kafka, postgres, redis as redis_adapter
from flashsale.adapters.shared_read import SharedRead
from flashsale.sale import CURRENT, Sale, start_sale
from flashsale.services.fanout import Fanout, Subscriber
from flashsale.services.http import (
    ApiError,
    BodyLimit,
    OrderRequest,
    RateLimiter,
    admin_only,
    error_body,
    install_error_handlers,
    serve,
)
from flashsale.services.supervisor import Supervisor
from flashsale.settings import Settings

settings = Settings()
BUYER_PAGE = (Path(__file__).parent / "static" / "buyer.html").read_text().replace(
    'content="FLASH_SALE_PRODUCT_001"', f'content="{html.escape(settings.product_id)}"')  # the product on sale


class ResetRequest(BaseModel):
    stock: int = Field(settings.initial_stock, ge=0, le=1_000_000)
    perUserLimit: int = Field(settings.per_user_limit, ge=1, le=1000)


@asynccontextmanager
async def lifespan(app: FastAPI):
    # Every background task is held and watched: one that dies makes /healthz answer 503, naming it.
    app.state.background = background = Supervisor()
    # A bounded pool that makes requests wait their turn, instead of failing, when 1,000 arrive at once.
    app.state.redis = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=64, timeout=5, socket_timeout=3))
    app.state.sale_and_stock = SharedRead(lambda: read_sale_and_stock(app.state.redis))
    background.watch("sale-and-stock read", app.state.sale_and_stock.start())
    app.state.db = postgres.async_pool(settings.database_url, 1, 4)
    await app.state.db.open(wait=False)
    producer = kafka.reliable_producer(settings.kafka_bootstrap_servers, settings.broker_on_s3,
                                       **{"linger.ms": 5, "error_cb": background.kafka_errors("kafka producer")})
    app.state.publisher = kafka.AsyncPublisher(producer)
    background.watch("delivery-report poller", app.state.publisher.poller)
    app.state.fanout = Fanout(settings.kafka_bootstrap_servers, settings.partitions, kafka.waiting(settings))
    background.watch("fan-out of notification.events", app.state.fanout.start())
    yield
    background.close()
    app.state.sale_and_stock.task.cancel()
    app.state.fanout.stop()
    app.state.publisher.close()
    await app.state.db.close()
    await app.state.redis.aclose()


app = FastAPI(title="flashsale gateway", lifespan=lifespan)
install_error_handlers(app)
app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
if settings.cors_origins:
    app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"])
limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)


async def read_sale_and_stock(redis: aioredis.Redis) -> tuple[bytes | str, bytes | str] | None:
    """The current sale and its stock: the hot path of every POST, one read shared by the requests waiting for it.

    Two round trips, not one script: the sale pointer and the sale's `{sale:N}` keys live in different hash slots,
    and in Redis Cluster a script may touch only keys of one slot, named in its KEYS (the stock key is made from the
    sale's id, so the pair read is always consistent).
    """
    raw = await redis.get(CURRENT)
    if raw is None:
        return None
    return raw, await redis.get(_parse_sale(raw).keys.stock) or b"0"


async def current_sale(request: Request) -> tuple[Sale, int]:
    found = await request.app.state.sale_and_stock()
    if not found:
        raise ApiError(503, "NO_SALE", "No sale is running; run `flashsale reset`.", {"Retry-After": "1"})
    raw, stock = found
    return _parse_sale(raw), int(stock)


@functools.lru_cache(maxsize=8)
def _parse_sale(raw: bytes) -> Sale:
    return Sale.from_json(raw)


@app.post("/api/orders", status_code=202)
async def place_order(order: OrderRequest, request: Request,
                      idempotency_key: Annotated[str | None, Header(max_length=128)] = None):
    if not limiter.allow(request.client.host if request.client else "?"):
        raise ApiError(429, "RATE_LIMITED", "Too many requests; slow down.", {"Retry-After": "1"})
    sale, stock = await current_sale(request)
    if order.productId != sale.productId:
        raise ApiError(404, "UNKNOWN_PRODUCT", f"No product {order.productId!r} in this sale.")
    if order.quantity > sale.perUserLimit:
        raise ApiError(422, "OVER_PER_USER_LIMIT", f"At most {sale.perUserLimit} per buyer.")
    # The same key from the same user names the same order, so a retry can never make a second one.
    order_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{sale.saleId}/{order.userId}/{idempotency_key}")
                   if idempotency_key else uuid.uuid4())
    if stock <= 0 and not (idempotency_key and await request.app.state.redis.hexists(sale.keys.decisions, order_id)):
        # The fast path: no event for a sale that is over. Only a retry of an order that inventory has
        # already decided goes on: its unit may be the one that sold, and it must get its orderId back.
        raise ApiError(409, "SOLD_OUT", "Sold out.")
    created = ev.Event(type=ev.ORDER_CREATED, orderId=order_id, saleId=sale.saleId, priceCents=settings.price_cents,
                       **order.model_dump())
    try:
        # The broker's answer decides: librdkafka reports within message.timeout.ms (4 s) whether it took the
        # event. Our timeout is only a safety net, and longer, so that a busy event loop cannot answer 503 for
        # an event the broker did take (an order the buyer was told to place again).
        await request.app.state.publisher.send(created.topic, order_id, created.to_json(), timeout=10)
    except (TimeoutError, kafka.KafkaException, BufferError) as error:
        raise ApiError(503, "BROKER_UNAVAILABLE", "Cannot take orders right now; retry.",
                       {"Retry-After": "2"}) from error
    return {"orderId": order_id, "status": "PENDING", "estimatedProcessingTime": 100,
            "message": "Order received. Watch /ws or GET /api/orders/{orderId} for the outcome."}


@app.get("/api/orders/{order_id}")
async def get_order(order_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")], request: Request):
    async with request.app.state.db.connection() as conn:
        row = await (await conn.execute(
            "SELECT order_id, user_id, product_id, quantity, status, reason, created_at, updated_at "
            "FROM orders WHERE order_id = %s", (order_id,))).fetchone()
    if row is None:
        raise ApiError(404, "ORDER_NOT_FOUND", "No such order (yet): the order service records it shortly.")
    keys = ("orderId", "userId", "productId", "quantity", "status", "reason", "createdAt", "updatedAt")
    return dict(zip(keys, row, strict=True))


@app.get("/api/products/{product_id}")
async def get_product(product_id: str, request: Request, response: Response):
    # Public facts, read by the talk's deck from a file:// page (Origin: null): any page may read them, without
    # credentials. Only this GET says so; the admin routes keep the configured origins (none by default).
    response.headers["Access-Control-Allow-Origin"] = "*"
    sale, stock = await current_sale(request)
    if product_id != sale.productId:
        raise ApiError(404, "UNKNOWN_PRODUCT", f"No product {product_id!r} in this sale.")
    return {"productId": sale.productId, "name": sale.name, "initialStock": sale.initialStock,
            "availableStock": max(stock, 0)}


@app.post("/api/admin/reset", dependencies=[Depends(admin_only(settings.admin_token))])
def reset(body: Annotated[ResetRequest | None, Body()] = None):
    body = body or ResetRequest()
    with postgres.connect(settings.database_url) as pg:
        sale = start_sale(pg, redis_adapter.connect(settings.redis_url), settings.product_id,
                          settings.product_name, body.stock, body.perUserLimit)
    return {"saleId": sale.saleId, "productId": sale.productId, "initialStock": sale.initialStock}


@app.get("/healthz")
async def healthz(request: Request):
    """200 when Redis, PostgreSQL and Kafka answer and every background task runs; else 503, saying what is wrong."""
    checks = {"redis": request.app.state.redis.ping(), "postgres": _pg_ok(request), "kafka": _kafka_ok(request)}
    results = dict(zip(checks, await asyncio.gather(*checks.values(), return_exceptions=True), strict=True))
    healthy = {name: result is True for name, result in results.items()}
    problems = [f"{name} does not answer ({type(result).__name__})" for name, result in results.items()
                if result is not True] + request.app.state.background.problems()
    if not problems:
        return {"healthy": True, **healthy}
    return JSONResponse({**error_body("UNHEALTHY", "; ".join(problems)), "healthy": False, **healthy}, 503)


async def _pg_ok(request: Request) -> bool:
    async with request.app.state.db.connection(timeout=2) as conn:
        await conn.execute("SELECT 1")
    return True


async def _kafka_ok(request: Request) -> bool:
    producer = request.app.state.publisher.producer
    producer.poll(0)  # serves a waiting error report: a fatal one shows in this very answer
    await asyncio.to_thread(producer.list_topics, ev.ORDER_EVENTS, 2)
    return True


@app.get("/", response_class=HTMLResponse)
async def buyer_page():
    return BUYER_PAGE


@app.websocket("/ws")
async def websocket(socket: WebSocket, userId: str | None = None):
    """Stock updates for everyone; order updates only for `userId` when given (all of them otherwise).

    The sender lives inside the handler (a TaskGroup): if it fails, the handler ends with its error, for the
    server to log, instead of listening on to a socket nobody writes to.
    """
    await socket.accept()
    fanout: Fanout = socket.app.state.fanout
    subscriber = fanout.subscribe(userId)
    try:
        async with asyncio.TaskGroup() as tasks:
            sender = tasks.create_task(_pump(subscriber, socket))
            while (await socket.receive())["type"] != "websocket.disconnect":
                pass  # we expect nothing from the browser; this notices the close
            sender.cancel()
    except* WebSocketDisconnect:
        pass  # the browser went away while we were sending to it
    finally:
        fanout.unsubscribe(subscriber)


async def _pump(subscriber: Subscriber, socket: WebSocket) -> None:
    while True:
        await socket.send_text(await subscriber.next())


def main() -> None:
    serve(app, settings, settings.gateway_port)


if __name__ == "__main__":
    main()

"""The gateway: HTTP in, `order.created` out, WebSocket updates back.

POST /api/orders answers 202 only once the broker has acknowledged the event
(the seed's fire-and-forget lost orders whenever Kafka was down), 503 when it
cannot. It decides nothing about stock: inventory does, from the event.
"""
import asyncio
import functools
import uuid
from typing import Annotated, Any

from confluent_kafka import KafkaException
from fastapi import APIRouter, Body, Depends, FastAPI, Header, Request, WebSocket, WebSocketDisconnect
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, StringConstraints

from flashsale import events as ev
from flashsale.adapters import postgres, redis as redis_adapter
from flashsale.sale import Sale, start_sale
from flashsale.services.fanout import Subscriber
from flashsale.services.gateway_state import Gateway, TheGateway, lifespan, parse_sale
from flashsale.services.http import ApiError, BodyLimit, OrderRequest, admin_only, error_body, install_error_handlers
from flashsale.services.runner import run_http_service
from flashsale.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """The gateway's app: one per call, wired from `settings` (the environment's, if none)."""
    settings = settings or Settings()
    app = FastAPI(title="flashsale gateway", lifespan=functools.partial(lifespan, settings=settings))
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"])
    app.include_router(routes)
    app.include_router(admin, dependencies=[Depends(admin_only(settings.admin_token))])
    return app


class ResetRequest(BaseModel):
    stock: int | None = Field(None, ge=0, le=1_000_000)  # none: the settings' initial stock
    perUserLimit: int | None = Field(None, ge=1, le=1000)  # none: the settings' per-user limit


routes, admin = APIRouter(), APIRouter()  # the admin routes need the admin token (`create_app` says which)
# Each route's return type is for the reader and mypy; `response_model=None` keeps FastAPI from validating the answer
# once more (on the hot path) and from adding it to the OpenAPI schema, as when the routes had no return types.


async def current_sale(gateway: Gateway) -> tuple[Sale, int]:
    found = await gateway.sale_and_stock()
    if not found:
        raise ApiError(503, "NO_SALE", "No sale is running; run `flashsale reset`.", {"Retry-After": "1"})
    raw, stock = found
    return parse_sale(raw), int(stock)


@routes.post("/api/orders", status_code=202, response_model=None)
async def place_order(order: OrderRequest, request: Request, gateway: TheGateway,
                      idempotency_key: Annotated[str | None, Header(max_length=128)] = None) -> dict[str, Any]:
    if not gateway.limiter.allow(request.client.host if request.client else "?"):
        raise ApiError(429, "RATE_LIMITED", "Too many requests; slow down.", {"Retry-After": "1"})
    sale, stock = await current_sale(gateway)
    if order.productId != sale.productId:
        raise ApiError(404, "UNKNOWN_PRODUCT", f"No product {order.productId!r} in this sale.")
    if order.quantity > sale.perUserLimit:
        raise ApiError(422, "OVER_PER_USER_LIMIT", f"At most {sale.perUserLimit} per buyer.")
    # The same key from the same user names the same order, so a retry can never make a second one.
    order_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{sale.saleId}/{order.userId}/{idempotency_key}")
                   if idempotency_key else uuid.uuid4())
    if stock <= 0 and not (idempotency_key and await gateway.redis.hexists(sale.keys.decisions, order_id)):
        # The fast path: no event for a sale that is over. Only a retry of an order that inventory has
        # already decided goes on: its unit may be the one that sold, and it must get its orderId back.
        raise ApiError(409, "SOLD_OUT", "Sold out.")
    created = ev.Event(type=ev.ORDER_CREATED, orderId=order_id, saleId=sale.saleId,
                       priceCents=gateway.settings.price_cents, **order.model_dump())
    try:
        # The broker's answer decides: librdkafka reports within message.timeout.ms (4 s) whether it took the
        # event. Our timeout is only a safety net, and longer, so that a busy event loop cannot answer 503 for
        # an event the broker did take (an order the buyer was told to place again).
        await gateway.publisher.send(created.topic, order_id, created.to_json(), timeout=10)
    except (TimeoutError, KafkaException, BufferError) as error:
        raise ApiError(503, "BROKER_UNAVAILABLE", "Cannot take orders right now; retry.",
                       {"Retry-After": "2"}) from error
    return {"orderId": order_id, "status": "PENDING", "estimatedProcessingTime": 100,
            "message": "Order received. Watch /ws or GET /api/orders/{orderId} for the outcome."}


@routes.get("/api/orders/{order_id}", response_model=None)
async def get_order(order_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")],
                    gateway: TheGateway) -> dict[str, Any]:
    async with gateway.db.connection() as conn:
        row = await (await conn.execute(
            "SELECT order_id, user_id, product_id, quantity, status, reason, created_at, updated_at "
            "FROM orders WHERE order_id = %s", (order_id,))).fetchone()
    if row is None:
        raise ApiError(404, "ORDER_NOT_FOUND", "No such order (yet): the order service records it shortly.")
    keys = ("orderId", "userId", "productId", "quantity", "status", "reason", "createdAt", "updatedAt")
    return dict(zip(keys, row, strict=True))


@routes.get("/api/products/{product_id}", response_model=None)
async def get_product(product_id: str, response: Response, gateway: TheGateway) -> dict[str, Any]:
    # Public facts, read by the talk's deck from a file:// page (Origin: null): any page may read them, without
    # credentials. Only this GET says so; the admin routes keep the configured origins (none by default).
    response.headers["Access-Control-Allow-Origin"] = "*"
    sale, stock = await current_sale(gateway)
    if product_id != sale.productId:
        raise ApiError(404, "UNKNOWN_PRODUCT", f"No product {product_id!r} in this sale.")
    return {"productId": sale.productId, "name": sale.name, "initialStock": sale.initialStock,
            "availableStock": max(stock, 0)}


@admin.post("/api/admin/reset", response_model=None)
def reset(gateway: TheGateway, body: Annotated[ResetRequest | None, Body()] = None) -> dict[str, Any]:
    body, settings = body or ResetRequest(), gateway.settings
    with postgres.connect(settings.database_url) as pg:
        sale = start_sale(pg, redis_adapter.connect(settings.redis_url), settings.product_id, settings.product_name,
                          settings.initial_stock if body.stock is None else body.stock,
                          settings.per_user_limit if body.perUserLimit is None else body.perUserLimit)
    return {"saleId": sale.saleId, "productId": sale.productId, "initialStock": sale.initialStock}


@routes.get("/healthz", response_model=None)
async def healthz(gateway: TheGateway) -> dict[str, Any] | JSONResponse:
    """200 when Redis, PostgreSQL and Kafka answer and every background task runs; else 503, saying what is wrong."""
    checks = {"redis": gateway.redis.ping(), "postgres": _pg_ok(gateway), "kafka": _kafka_ok(gateway)}
    results = dict(zip(checks, await asyncio.gather(*checks.values(), return_exceptions=True), strict=True))
    healthy = {name: result is True for name, result in results.items()}
    problems = [f"{name} does not answer ({type(result).__name__})" for name, result in results.items()
                if result is not True] + gateway.background.problems()
    if not problems:
        return {"healthy": True, **healthy}
    return JSONResponse({**error_body("UNHEALTHY", "; ".join(problems)), "healthy": False, **healthy}, 503)


async def _pg_ok(gateway: Gateway) -> bool:
    async with gateway.db.connection(timeout=2) as conn:
        await conn.execute("SELECT 1")
    return True


async def _kafka_ok(gateway: Gateway) -> bool:
    producer = gateway.publisher.producer
    producer.poll(0)  # serves a waiting error report: a fatal one shows in this very answer
    await asyncio.to_thread(producer.list_topics, ev.ORDER_EVENTS, 2)
    return True


@routes.get("/", response_class=HTMLResponse, response_model=None)
async def buyer_page(gateway: TheGateway) -> str:
    return gateway.buyer_page


@routes.websocket("/ws")
async def websocket(socket: WebSocket, gateway: TheGateway, userId: str | None = None) -> None:
    """Stock updates for everyone; order updates only for `userId` when given (all of them otherwise).

    The sender lives inside the handler (a TaskGroup): if it fails, the handler ends with its error, for the
    server to log, instead of listening on to a socket nobody writes to.
    """
    await socket.accept()
    fanout = gateway.fanout
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


if __name__ == "__main__":
    settings = Settings()
    run_http_service(create_app, settings, settings.gateway_port)

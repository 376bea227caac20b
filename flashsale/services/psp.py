"""The payment provider (psp): a stand-in for a card processor, on a port of its own. Every system pays here.

POST /charges           {"orderId", "amount"} + Idempotency-Key -> 201 succeeded, 402 declined, 503 in an outage
GET  /charges?orderId=  every charge of one order
POST /refunds           {"orderId"} + Idempotency-Key -> 201 refunded: the order's succeeded charge, once
POST /admin/behaviour   (admin token) its delay, failure rate and outage window, live: `flashsale psp`

A key is charged once, as real providers promise: its first answer (succeeded or declined) is stored in
PostgreSQL, unique on the key, and every repeat of the key gets that answer back without a second charge,
also after a restart or a `kill -9` between storing and answering. An outage answers before anything is
stored, so a retry once it is over is charged. The behaviour lives in this process only: a restarted
provider starts again from the settings.
"""
import asyncio
import functools
import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, FastAPI, Header
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.requests import HTTPConnection

from flashsale.adapters import postgres
from flashsale.services.http import ApiError, BodyLimit, admin_only, error_body, install_error_handlers
from flashsale.services.runner import run_http_service
from flashsale.settings import Settings


class Behaviour:
    """What `flashsale psp` changes: how slow the provider is, how often it declines, until when it is down."""

    def __init__(self, delay_ms: int, failure_rate: float):
        self.delay_ms, self.failure_rate, self.down_until = delay_ms, failure_rate, 0.0

    @property
    def outage_left_s(self) -> float:
        return max(0.0, self.down_until - time.monotonic())

    def as_dict(self) -> dict[str, float]:
        return {"delayMs": self.delay_ms, "failureRate": self.failure_rate, "outageLeftS": round(self.outage_left_s, 1)}


class BehaviourChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delayMs: int | None = Field(None, ge=0, le=60_000)
    failureRate: float | None = Field(None, ge=0, le=1)
    outageSeconds: float | None = Field(None, ge=0, le=3600)  # down from now for this long; 0 ends an outage


OrderId = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f]{1,128}$")]


class RefundRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    orderId: OrderId


class ChargeRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    orderId: OrderId
    amount: int = Field(ge=1, le=10**12)  # cents


@dataclass
class Provider:
    """What the routes use: made when the app starts (`lifespan`), handed out by `Depends`."""
    db: AsyncConnectionPool
    behaviour: Behaviour  # this process's alone: a restarted provider starts again from the settings


def the_provider(connection: HTTPConnection) -> Provider:
    return connection.state.provider  # put there by `lifespan`, typed here


TheProvider = Annotated[Provider, Depends(the_provider)]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The provider's app: one per call, wired from `settings` (the environment's, if none)."""
    settings = settings or Settings()
    app = FastAPI(title="flashsale payment provider", lifespan=functools.partial(lifespan, settings=settings))
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.include_router(routes)
    app.include_router(admin, dependencies=[Depends(admin_only(settings.admin_token))])
    return app


@asynccontextmanager
async def lifespan(app: FastAPI, settings: Settings) -> AsyncIterator[dict[str, Any]]:
    db = postgres.async_pool(settings.database_url, 4, 4)
    await db.open(wait=True, timeout=10)
    yield {"provider": Provider(db, Behaviour(settings.payment_delay_ms, settings.payment_failure_rate))}
    await db.close()


routes, admin = APIRouter(), APIRouter()  # the admin routes need the admin token (`create_app` says which)

# One round trip: store the new charge, or find the key's first one. A charge that is being stored by another
# request at this very moment is in neither (the INSERT waits for it, then stores nothing; the SELECT's snapshot
# is older), so then the key is looked up once more.
CHARGE_ONCE = """
    WITH new AS (INSERT INTO charges (charge_id, idempotency_key, order_id, amount, status)
                 VALUES (%(charge)s, %(key)s, %(order)s, %(amount)s, %(status)s)
                 ON CONFLICT (idempotency_key) DO NOTHING RETURNING charge_id, order_id, status)
    SELECT * FROM new UNION ALL SELECT charge_id, order_id, status FROM charges WHERE idempotency_key = %(key)s"""
FIND = "SELECT charge_id, order_id, status FROM charges WHERE idempotency_key = %(key)s"


@routes.post("/charges", status_code=201, response_model=None)
async def charge(body: ChargeRequest, provider: TheProvider,
                 idempotency_key: Annotated[str, Header(min_length=1, max_length=128)]
                 ) -> dict[str, Any] | JSONResponse:
    behaviour = provider.behaviour
    if behaviour.outage_left_s > 0:
        raise ApiError(503, "PROVIDER_UNAVAILABLE", "The payment provider is down; retry with the same key.",
                       {"Retry-After": "1"})
    await asyncio.sleep(behaviour.delay_ms / 1000)  # the card network
    attempt = {"charge": f"ch_{uuid.uuid4().hex}", "key": idempotency_key, "order": body.orderId,
               "amount": body.amount, "status": "declined" if random.random() < behaviour.failure_rate else "succeeded"}
    async with provider.db.connection() as conn:
        first = (await (await conn.execute(CHARGE_ONCE, attempt)).fetchone()
                 or await (await conn.execute(FIND, attempt)).fetchone())
    assert first is not None, "a key's charge is stored, or found, once the INSERT has waited for it"
    charge_id, order_id, status = first
    if status == "declined":
        return JSONResponse(error_body("CARD_DECLINED", f"The charge for order {order_id} was declined.",
                                       chargeId=charge_id), 402)
    return {"chargeId": charge_id, "orderId": order_id, "status": status}


# A refund takes the order's succeeded charge (its row lock makes a second refund of it wait, then find it
# refunded) and stores the key's answer, in one transaction: a key refunds once, a charge is refunded once.
REFUND_CHARGE = ("UPDATE charges SET status = 'refunded' WHERE charge_id = (SELECT charge_id FROM charges "
                 "WHERE order_id = %(order)s AND status = 'succeeded' LIMIT 1) AND status = 'succeeded' "
                 "RETURNING charge_id")
STORE_REFUND = ("INSERT INTO refunds (refund_id, idempotency_key, order_id, charge_id) "
                "VALUES (%(refund)s, %(key)s, %(order)s, %(charge)s) ON CONFLICT (idempotency_key) DO NOTHING "
                "RETURNING refund_id, order_id")
FIND_REFUND = "SELECT refund_id, order_id FROM refunds WHERE idempotency_key = %(key)s"


@routes.post("/refunds", status_code=201, response_model=None)
async def refund(body: RefundRequest, provider: TheProvider,
                 idempotency_key: Annotated[str, Header(min_length=1, max_length=128)]) -> dict[str, Any]:
    if provider.behaviour.outage_left_s > 0:
        raise ApiError(503, "PROVIDER_UNAVAILABLE", "The payment provider is down; retry with the same key.",
                       {"Retry-After": "1"})
    await asyncio.sleep(provider.behaviour.delay_ms / 1000)
    attempt = {"refund": f"re_{uuid.uuid4().hex}", "key": idempotency_key, "order": body.orderId}
    async with provider.db.connection() as conn:
        first = await (await conn.execute(FIND_REFUND, attempt)).fetchone()
        if first is None:
            async with conn.transaction():
                charged = await (await conn.execute(REFUND_CHARGE, attempt)).fetchone()
                if charged is not None:
                    first = await (await conn.execute(STORE_REFUND, {**attempt, "charge": charged[0]})).fetchone()
                    if first is None:  # the same key refunded another order meanwhile: keep that answer
                        raise psycopg.Rollback()
            first = first or await (await conn.execute(FIND_REFUND, attempt)).fetchone()
    if first is None:
        raise ApiError(409, "NOTHING_TO_REFUND", f"Order {body.orderId} has no succeeded charge to refund.")
    return {"refundId": first[0], "orderId": first[1], "status": "refunded"}


@routes.get("/charges", response_model=None)
async def charges_of(orderId: OrderId, provider: TheProvider) -> dict[str, Any]:
    async with provider.db.connection() as conn:
        rows = await (await conn.execute("SELECT charge_id, order_id, status, created_at FROM charges "
                                         "WHERE order_id = %s ORDER BY created_at", (orderId,))).fetchall()
    return {"charges": [{"chargeId": c, "orderId": o, "status": s, "createdAt": t} for c, o, s, t in rows]}


@admin.post("/admin/behaviour", response_model=None)
def change_behaviour(provider: TheProvider, change: BehaviourChange | None = None) -> dict[str, float]:
    """Change what is given (nothing: only read it); an outage starts now."""
    change, behaviour = change or BehaviourChange(), provider.behaviour
    if change.delayMs is not None:
        behaviour.delay_ms = change.delayMs
    if change.failureRate is not None:
        behaviour.failure_rate = change.failureRate
    if change.outageSeconds is not None:
        behaviour.down_until = time.monotonic() + change.outageSeconds
    return behaviour.as_dict()


@routes.get("/healthz", response_model=None)
async def healthz(provider: TheProvider) -> dict[str, Any]:
    async with provider.db.connection(timeout=2) as conn:
        await conn.execute("SELECT 1")
    return {"healthy": True, **provider.behaviour.as_dict()}


if __name__ == "__main__":
    settings = Settings()
    # Only our own services call it: it stays on loopback, also when the shop is public (`up --public`).
    run_http_service(create_app, settings.model_copy(update={"public": False}), settings.psp_port)

"""The payment provider (psp): a stand-in for a card processor, on a port of its own. Every system pays here.

POST /charges           {"orderId", "amount"} + Idempotency-Key -> 201 succeeded, 402 declined, 503 in an outage
GET  /charges?orderId=  every charge of one order
POST /admin/behaviour   (admin token) its delay, failure rate and outage window, live: `flashsale psp`

A key is charged once, as real providers promise: its first answer (succeeded or declined) is stored in
PostgreSQL, unique on the key, and every repeat of the key gets that answer back without a second charge,
also after a restart or a `kill -9` between storing and answering. An outage answers before anything is
stored, so a retry once it is over is charged. The behaviour lives in this process only: a restarted
provider starts again from the settings.
"""
import asyncio
import random
import time
import uuid
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from flashsale.adapters import postgres
from flashsale.services.http import ApiError, BodyLimit, admin_only, error_body, install_error_handlers, serve
from flashsale.settings import Settings

settings = Settings()


class Behaviour:
    """What `flashsale psp` changes: how slow the provider is, how often it declines, until when it is down."""

    def __init__(self, delay_ms: int, failure_rate: float):
        self.delay_ms, self.failure_rate, self.down_until = delay_ms, failure_rate, 0.0

    @property
    def outage_left_s(self) -> float:
        return max(0.0, self.down_until - time.monotonic())

    def as_dict(self) -> dict:
        return {"delayMs": self.delay_ms, "failureRate": self.failure_rate, "outageLeftS": round(self.outage_left_s, 1)}


class BehaviourChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delayMs: int | None = Field(None, ge=0, le=60_000)
    failureRate: float | None = Field(None, ge=0, le=1)
    outageSeconds: float | None = Field(None, ge=0, le=3600)  # down from now for this long; 0 ends an outage


class ChargeRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    orderId: Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f]{1,128}$")]
    amount: int = Field(ge=1, le=10**12)  # cents


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.db = postgres.async_pool(settings.database_url, 4, 4)
    await app.state.db.open(wait=True, timeout=10)
    yield
    await app.state.db.close()


app = FastAPI(title="flashsale payment provider", lifespan=lifespan)
install_error_handlers(app)
app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
behaviour = Behaviour(settings.payment_delay_ms, settings.payment_failure_rate)

# One round trip: store the new charge, or find the key's first one. A charge that is being stored by another
# request at this very moment is in neither (the INSERT waits for it, then stores nothing; the SELECT's snapshot
# is older), so then the key is looked up once more.
CHARGE_ONCE = """
    WITH new AS (INSERT INTO charges (charge_id, idempotency_key, order_id, amount, status)
                 VALUES (%(charge)s, %(key)s, %(order)s, %(amount)s, %(status)s)
                 ON CONFLICT (idempotency_key) DO NOTHING RETURNING charge_id, order_id, status)
    SELECT * FROM new UNION ALL SELECT charge_id, order_id, status FROM charges WHERE idempotency_key = %(key)s"""
FIND = "SELECT charge_id, order_id, status FROM charges WHERE idempotency_key = %(key)s"


@app.post("/charges", status_code=201)
async def charge(body: ChargeRequest, request: Request,
                 idempotency_key: Annotated[str, Header(min_length=1, max_length=128)]):
    if behaviour.outage_left_s > 0:
        raise ApiError(503, "PROVIDER_UNAVAILABLE", "The payment provider is down; retry with the same key.",
                       {"Retry-After": "1"})
    await asyncio.sleep(behaviour.delay_ms / 1000)  # the card network
    attempt = {"charge": f"ch_{uuid.uuid4().hex}", "key": idempotency_key, "order": body.orderId,
               "amount": body.amount, "status": "declined" if random.random() < behaviour.failure_rate else "succeeded"}
    async with request.app.state.db.connection() as conn:
        first = (await (await conn.execute(CHARGE_ONCE, attempt)).fetchone()
                 or await (await conn.execute(FIND, attempt)).fetchone())
    charge_id, order_id, status = first
    if status == "declined":
        return JSONResponse(error_body("CARD_DECLINED", f"The charge for order {order_id} was declined.",
                                       chargeId=charge_id), 402)
    return {"chargeId": charge_id, "orderId": order_id, "status": status}


@app.get("/charges")
async def charges_of(orderId: Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f]{1,128}$")], request: Request):
    async with request.app.state.db.connection() as conn:
        rows = await (await conn.execute("SELECT charge_id, order_id, status, created_at FROM charges "
                                         "WHERE order_id = %s ORDER BY created_at", (orderId,))).fetchall()
    return {"charges": [{"chargeId": c, "orderId": o, "status": s, "createdAt": t} for c, o, s, t in rows]}


@app.post("/admin/behaviour", dependencies=[Depends(admin_only(settings.admin_token))])
def change_behaviour(change: BehaviourChange | None = None):
    """Change what is given (nothing: only read it); an outage starts now."""
    change = change or BehaviourChange()
    if change.delayMs is not None:
        behaviour.delay_ms = change.delayMs
    if change.failureRate is not None:
        behaviour.failure_rate = change.failureRate
    if change.outageSeconds is not None:
        behaviour.down_until = time.monotonic() + change.outageSeconds
    return behaviour.as_dict()


@app.get("/healthz")
async def healthz(request: Request):
    async with request.app.state.db.connection(timeout=2) as conn:
        await conn.execute("SELECT 1")
    return {"healthy": True, **behaviour.as_dict()}


def main() -> None:
    # Only our own services call it: it stays on loopback, also when the shop is public (`up --public`).
    serve(app, settings.model_copy(update={"public": False}), settings.psp_port)


if __name__ == "__main__":
    main()

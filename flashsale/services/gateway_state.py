"""What the gateway's routes use, made once per app when it starts (`lifespan`) and handed out by `Depends`.

The routes are in gateway.py; here are their parts and their lifetime: every background task held and watched,
every connection opened at the start and closed at the end.
"""
import functools
import html
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, FastAPI
from psycopg_pool import AsyncConnectionPool
from starlette.requests import HTTPConnection

from flashsale.adapters import kafka, postgres
from flashsale.adapters.shared_read import SharedRead
from flashsale.brokers import choose
from flashsale.sale import CURRENT, Sale
from flashsale.services.fanout import Fanout
from flashsale.services.http import RateLimiter
from flashsale.services.supervisor import Supervisor
from flashsale.settings import Settings

SaleAndStock = tuple[bytes | str, bytes | str] | None


@dataclass
class Gateway:
    """What the routes use: made once per app, when it starts (`lifespan`), and handed out by `Depends`."""
    settings: Settings
    limiter: RateLimiter
    buyer_page: str  # the buyer page, for the product on sale
    background: Supervisor  # every background task, held and watched: one that dies makes /healthz answer 503
    redis: aioredis.Redis
    sale_and_stock: SharedRead[SaleAndStock]
    db: AsyncConnectionPool
    publisher: kafka.AsyncPublisher
    fanout: Fanout


def the_gateway(connection: HTTPConnection) -> Gateway:
    return connection.state.gateway  # put there by `lifespan`, typed here


TheGateway = Annotated[Gateway, Depends(the_gateway)]


@asynccontextmanager
async def lifespan(app: FastAPI, settings: Settings) -> AsyncIterator[dict[str, Any]]:
    background = Supervisor()
    # A bounded pool that makes requests wait their turn, instead of failing, when 1,000 arrive at once.
    redis = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=64, timeout=5, socket_timeout=3))
    sale_and_stock = SharedRead(lambda: read_sale_and_stock(redis))
    background.watch("sale-and-stock read", sale_and_stock.start())
    db = postgres.async_pool(settings.database_url, 1, 4)
    await db.open(wait=False)
    profile = choose(settings)
    producer = kafka.reliable_producer(settings.kafka_bootstrap_servers, profile.producer,
                                       **{"linger.ms": 5, "error_cb": background.kafka_errors("kafka producer")})
    publisher = kafka.AsyncPublisher(producer, kafka.Bell.at(settings.redis_url) if profile.dozes else None)
    background.watch("delivery-report poller", publisher.poller)
    fanout = Fanout(settings.kafka_bootstrap_servers, settings.partitions, profile.waiting,
                    kafka.Dozing.at(settings.redis_url) if profile.dozes else None)
    background.watch("fan-out of notification.events", fanout.start())
    gateway = Gateway(settings, RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
                      buyer_page_for(settings.product_id), background, redis, sale_and_stock, db, publisher, fanout)
    yield {"gateway": gateway}
    background.close()
    sale_and_stock.stop()
    fanout.stop()
    publisher.close()
    await db.close()
    await redis.aclose()


def buyer_page_for(product_id: str) -> str:
    page = (Path(__file__).parent / "static" / "buyer.html").read_text()
    return page.replace('content="FLASH_SALE_PRODUCT_001"', f'content="{html.escape(product_id)}"')


async def read_sale_and_stock(redis: aioredis.Redis) -> SaleAndStock:
    """The current sale and its stock: the hot path of every POST, one read shared by the requests waiting for it.

    Two round trips, not one script: the sale pointer and the sale's `{sale:N}` keys live in different hash slots,
    and in Redis Cluster a script may touch only keys of one slot, named in its KEYS (the stock key is made from the
    sale's id, so the pair read is always consistent).
    """
    raw = await redis.get(CURRENT)
    if raw is None:
        return None
    return raw, await redis.get(parse_sale(raw).keys.stock) or b"0"


@functools.lru_cache(maxsize=8)
def parse_sale(raw: bytes | str) -> Sale:
    return Sale.from_json(raw)



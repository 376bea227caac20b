"""One typed settings object for every address, port and knob of the kit.

Values come from (highest first) keyword arguments, environment variables
(`FLASHSALE_*`, plus the conventional `KAFKA_BOOTSTRAP_SERVERS`,
`DATABASE_URL`, `REDIS_URL`), a `.env` file, and the defaults below.
"""
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flashsale.brokers import choose

DEFAULT_ADMIN_TOKEN = "flashsale-admin"  # fine on loopback; refused in public mode
PUBLIC_RATE_LIMIT_PER_S = 5.0  # public mode: a thumb on a Buy button, not a script
PUBLIC_BURST = 10


def _env(name: str) -> AliasChoices:
    """Accept both `FLASHSALE_<NAME>` and the plain conventional variable."""
    return AliasChoices(f"FLASHSALE_{name}", name)


class Settings(BaseSettings):
    # populate_by_name: `Settings(database_url=...)` and a copy made from `model_dump()` keep every address.
    model_config = SettingsConfigDict(env_prefix="FLASHSALE_", env_file=".env", extra="ignore", populate_by_name=True)

    # Where the embedded stack keeps its data, logs and process table.
    home: Path = Path(".flashsale")
    infra: Literal["embedded", "docker", "external"] = "embedded"
    # The embedded Kafka: tansu (zero install, the default) or Apache Kafka 4.x (`flashsale kafka install`).
    broker: Literal["tansu", "kafka"] = "tansu"
    # tansu keeps its log on S3 storage (SeaweedFS), so a kill -9 of the broker loses no accepted order: the default.
    # False is `flashsale up --fast`, tansu in memory: up in 4.6 s instead of 8-9, and a crash of the broker loses
    # every accepted order it still held (issue 26: 48 of 160 in one sale). Apache Kafka keeps its log on disk.
    # Measured on this machine, with the figures and the reasons for this default: docs/benchmarks.md, "Which broker
    # by default".
    durable: bool = True
    kafka_heap_mb: int = 512  # the embedded Apache Kafka's JVM heap (each node's)
    # Apache Kafka nodes: 1, or 3 (each a controller and a broker; topics with 3 replicas, min.insync.replicas 2).
    kafka_nodes: int = 1

    # Infrastructure addresses. The launcher fills them in for the services it starts.
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS"))
    database_url: str = Field("postgresql://postgres@127.0.0.1:5432/postgres", validation_alias=_env("DATABASE_URL"))
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=_env("REDIS_URL"))

    # The HTTP services (contract defaults).
    host: str = "127.0.0.1"
    gateway_port: int = 8000
    shop_port: int = 8001
    psp_port: int = 8002  # the payment provider every system calls (services/psp.py)
    public: bool = False  # live conference mode: listen on all interfaces, protections on (see below)

    # The sale.
    product_id: str = "FLASH_SALE_PRODUCT_001"
    product_name: str = "iPhone 15 Pro Max"
    initial_stock: int = 100
    per_user_limit: int = 1
    price_cents: int = 119_900  # what one unit costs: the amount of each charge
    # The payment provider's behaviour when it starts; `flashsale psp --delay MS --failure-rate F` changes it live,
    # and the provider alone holds it: every system pays through it, so no other process reads these.
    payment_delay_ms: int = 50  # a card network's time: the naive shop's race window, the locked shop's lock
    payment_failure_rate: float = Field(0.0, ge=0, le=1)  # the share of charges declined (402)
    # How long a client waits for the provider before it calls it unavailable. Card networks are slow on a bad day
    # (Stripe's own client waits 80 s): at 5 s, the naive shop's 1,000 charges at once timed out on a busy 2-core
    # machine by the hundred, while the provider was still working through them.
    psp_timeout_s: float = 30.0
    # The saga's deadline: an order RESERVED this long without a payment is cancelled (PAYMENT_TIMEOUT), its unit
    # goes back on sale, and a charge that succeeds after that is refunded (services/orders.py, expiry.py).
    payment_deadline_s: float = Field(30.0, gt=0)

    # Events.
    partitions: int = 3
    # On Apache Kafka, services join consumer groups as static members: the classic protocol (range assignor), or
    # KIP-848 (`consumer`). Classic is the default for now: measured here on Kafka 4.1.1 with
    # librdkafka 2.16, a KIP-848 static member fenced itself under load (STALE_MEMBER_EPOCH on commit, then "instance
    # id owned by" itself: a fatal error; apache/kafka PR #23542 is the open fix), and one restarted within the
    # session timeout after kill -9 got a fatal "instance ID is still used", where classic took its partitions back
    # at once. Notebook 05 measures both. On tansu, which has neither that works under churn, instance i of n owns
    # partitions p where p % n == i (see brokers.py).
    group_protocol: Literal["consumer", "classic"] = "classic"
    instance: int = 0
    instances: int = 1
    # How often a consumer tries a batch whose handler fails (a bug, not an outage: see adapters/dead_letters.py)
    # before it handles the events one by one and dead-letters the one that still fails. The cost: that order
    # stays PENDING until someone looks (`flashsale dlq`) and sends it back once fixed (`flashsale dlq --replay`).
    handler_attempts: int = Field(5, ge=1)
    # The invoice job (services/invoices.py) holds each transaction open this long after writing its invoices, so
    # that notebook 08 can kill it inside one. 0 outside the lab.
    invoice_hold_s: float = 0.0
    # Messages of order.events per transaction of the invoice job. The lab's kill runs it with 50, so that a sale's
    # 100 confirmations make two transactions at least, however closely they follow each other in the log. With 200,
    # a CI run on a fast VM found the job ended before a second transaction with invoices (notebook 08).
    invoice_batch_size: int = Field(200, ge=1)

    # Gateway protections.
    admin_token: str = DEFAULT_ADMIN_TOKEN
    rate_limit_per_s: float = 0.0  # per client; 0 turns it off (a classroom shares one address)
    rate_limit_burst: int = 20
    max_body_bytes: int = 16 * 1024
    cors_origins: list[str] = []

    @model_validator(mode="after")
    def _nodes_are_apache_kafkas(self) -> "Settings":
        if self.kafka_nodes not in (1, 3):
            raise ValueError("kafka_nodes: 1, or 3 (a quorum of three controllers, two of which may not both die)")
        if self.kafka_nodes > 1 and (self.broker != "kafka" or self.infra != "embedded"):
            raise ValueError("several Kafka nodes (--kafka-nodes) need the embedded Apache Kafka: --broker kafka")
        return self

    @property
    def replicas(self) -> int:
        """Copies of each partition: one per embedded Kafka node."""
        return self.kafka_nodes if self.infra == "embedded" else 1

    @model_validator(mode="after")
    def _public_mode_is_protected(self) -> "Settings":
        """Public mode listens on every interface, so whoever starts a process in it (`flashsale up --public`, or
        `python -m flashsale.services.gateway` by hand) gets the protections: the well-known default admin token
        is refused, and the rate limit is on. (The FastAPI template's `core/config.py` refuses its default secret
        outside local development the same way.)"""
        if not self.public:
            return self
        if self.admin_token == DEFAULT_ADMIN_TOKEN:
            raise ValueError("public mode (FLASHSALE_PUBLIC) refuses the default admin token: set "
                             "FLASHSALE_ADMIN_TOKEN to a secret of your own, or start with `flashsale up --public`, "
                             "which makes one")
        if self.rate_limit_per_s == 0:
            self.rate_limit_per_s, self.rate_limit_burst = PUBLIC_RATE_LIMIT_PER_S, PUBLIC_BURST
        return self

    @property
    def consumer_groups(self) -> bool:
        """Services join consumer groups: the broker profile's say (brokers.py); notebook 05 asks it by this name."""
        return choose(self).groups

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def shop_url(self) -> str:
        return f"http://127.0.0.1:{self.shop_port}"

    @property
    def psp_url(self) -> str:
        return f"http://127.0.0.1:{self.psp_port}"

"""The event vocabulary: every fact the services tell each other, in one place.

Events are past-tense records, JSON on the wire, keyed by orderId so that all
events of one order land on one partition, in order. Each says which version of
this vocabulary wrote it; `Event.from_json` reads any version, upcasting the older
ones first, so the log can be read from its beginning by today's code.
"""
import json
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar
from uuid import uuid4

from pydantic import BaseModel, Field, StringConstraints

# Topics. A message a consumer cannot decode goes to "<topic>.dlq".
ORDER_EVENTS = "order.events"
INVENTORY_EVENTS = "inventory.events"
PAYMENT_EVENTS = "payment.events"
NOTIFICATION_EVENTS = "notification.events"
TOPICS = (ORDER_EVENTS, INVENTORY_EVENTS, PAYMENT_EVENTS, NOTIFICATION_EVENTS)
INVOICE_EVENTS = "invoice.events"  # the invoice job's output (services/invoices.py), written in Kafka transactions


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


# Event types, in the order an order meets them.
ORDER_CREATED = "order.created"  # gateway: a buyer asked
ORDER_SAVED = "order.saved"  # orders: the row is PENDING
STOCK_RESERVED = "inventory.reserved"  # inventory: a unit is theirs
STOCK_INSUFFICIENT = "inventory.insufficient"  # inventory: sold out or over the limit
ORDER_RESERVED = "order.reserved"  # orders: the row is RESERVED, the payment under way
PAYMENT_SUCCEEDED = "payment.succeeded"  # payments: the provider charged the buyer, once
PAYMENT_FAILED = "payment.failed"  # payments: the provider declined the charge
STOCK_RELEASED = "inventory.released"  # inventory: the unit of an unpaid order is back in stock
ORDER_CONFIRMED = "order.confirmed"  # orders: the row is CONFIRMED
ORDER_CANCELLED = "order.cancelled"  # orders: the row is CANCELLED
# The saga's deadline: an order RESERVED longer than Settings.payment_deadline_s is cancelled by orders.
ORDER_EXPIRED = "order.expired"  # orders: the payment did not come in time; inventory gives the unit back
REFUND_DUE = "payment.refund_due"  # orders: a charge succeeded after its order expired; payments refunds it
PAYMENT_REFUNDED = "payment.refunded"  # payments: the provider refunded that charge, once
INVOICE_ISSUED = "invoice.issued"  # the invoice job: one invoice per order.confirmed it read

PAYMENT_FAILED_REASON = "PAYMENT_FAILED"  # why an order whose charge was declined is cancelled
PAYMENT_TIMEOUT_REASON = "PAYMENT_TIMEOUT"  # why an order not paid within the deadline is cancelled

# What the notification service tells every browser (the WebSocket message types).
ORDER_UPDATE = "order_update"
STOCK_UPDATE = "stock_update"


def topic_of(event_type: str) -> str:
    topics = {"inventory": INVENTORY_EVENTS, "payment": PAYMENT_EVENTS, "invoice": INVOICE_EVENTS}
    return topics.get(event_type.split(".")[0], ORDER_EVENTS)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# What the tables can hold: text without control characters (PostgreSQL refuses a NUL), numbers that fit an
# integer column. An event outside these bounds does not decode, so it goes to the dead-letter topic, instead
# of failing its handler on every retry and stopping the consumer behind it.
Text = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f]{1,64}$")]
Int32 = Annotated[int, Field(ge=1, le=2**31 - 1)]


# The version of this vocabulary. 1: the fields below up to availableStock, and no `version` field.
# 2: `priceCents`, what one unit cost when the buyer ordered, on order.created and every event that follows it.
VERSION = 2
V1_PRICE_CENTS = 119_900  # every sale of version 1 was at this price: what the payment service charged then


def upcast(data: dict) -> dict:
    """An event as an older version wrote it, in today's shape: a new dict, the input untouched."""
    if isinstance(data, dict) and data.get("version", 1) == 1:
        data = {**data, "version": 2, "priceCents": V1_PRICE_CENTS}
    return data


class Event(BaseModel):
    """One fact about one order. `saleId` keeps a new sale apart from late events of an old one.

    A reader ignores fields it does not know (pydantic's default), so version 1 consumers read version 2
    events: a new field is only ever added, optional, never renamed or retyped.
    """

    version: int = VERSION
    eventId: str = Field(default_factory=lambda: str(uuid4()))
    type: str
    occurredAt: str = Field(default_factory=now_iso)
    orderId: Text
    userId: Text
    productId: Text
    quantity: Int32
    saleId: Int32
    reason: Text | None = None  # on inventory.insufficient, payment.failed and order.cancelled
    availableStock: int | None = None  # on inventory.* : stock left after the decision
    priceCents: Int32 | None = None  # version 2: the unit price the buyer was shown (order.created onwards)
    refunded: bool | None = None  # on order.cancelled (PAYMENT_TIMEOUT): the late charge was given back

    @classmethod
    def from_json(cls, raw: bytes | str) -> "Event":
        """An event off the wire, whichever version wrote it: an older one is upcast to this one first."""
        try:
            data = json.loads(raw)
        except ValueError:
            return cls.model_validate_json(raw)  # not JSON at all: pydantic's error says so
        return cls.model_validate(upcast(data))

    @property
    def topic(self) -> str:
        return topic_of(self.type)

    @property
    def key(self) -> str:
        return self.orderId

    def next(self, type: str, **extra: Any) -> "Event":
        """The event that follows this one for the same order (a new eventId and time)."""
        fields = self.model_dump(include={"orderId", "userId", "productId", "quantity", "saleId", "priceCents"})
        return Event(type=type, **fields, **extra)

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class Notification(BaseModel):
    """A message for the browsers, exactly as the WebSocket sends it."""

    type: str  # ORDER_UPDATE or STOCK_UPDATE
    data: dict
    topic: ClassVar[str] = NOTIFICATION_EVENTS

    @property
    def key(self) -> str:
        return self.data.get("orderId") or self.data.get("productId", "")

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

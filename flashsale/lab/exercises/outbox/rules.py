"""Exercise 14's rules, as the notebook states them, the steps of its check, and the outbox they are about."""
from flashsale import events as ev
from flashsale.lab.exercises import Rule

OUTBOX = """
CREATE TABLE IF NOT EXISTS outbox (
    id         bigserial PRIMARY KEY,       -- publish in this order
    topic      text NOT NULL,
    key        text NOT NULL,               -- the orderId: all events of an order on one partition
    payload    text NOT NULL,               -- the event's JSON, exactly as it will go on the wire
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz                  -- NULL until the broker has acknowledged it
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
"""


SALE = 2**31 - 14  # the check's orders belong to a sale of their own: they count in no real sale's figures


STATUS_EVENT = {"CONFIRMED": ev.ORDER_CONFIRMED, "CANCELLED": ev.ORDER_CANCELLED}


ELSEWHERE = "exercise14.elsewhere"  # a topic of the check's own: a row may name any topic, and goes there


UNANSWERED_MS = 2000  # how long the relay's producer waits for a frozen broker before it reports a failure


RULES = (
    Rule(1, "`set_status` writes the status change and its outbox row in one transaction, on the `conn` it is given: "
            "both commit, or neither does."),
    Rule(2, "The outbox row holds the event that announces the change: `order.confirmed` or `order.cancelled`, with "
            "the order's own `orderId`, `userId`, `productId`, `quantity` and `saleId`, and the `reason`; its `topic` "
            "is `event.topic`, its `key` is `event.key`, its `payload` is `event.to_json().decode()`."),
    Rule(3, "Only a `PENDING` order moves, and then `set_status` returns `True`; for any other it changes nothing, "
            "writes no row, and returns `False`."),
    Rule(4, "`set_status` publishes nothing: only the relay publishes."),
    Rule(5, "`relay_once` publishes at most `limit` unsent rows, oldest first, each with its row's topic, key and "
            "payload, and returns how many it published (0 when there were none)."),
    Rule(6, "It marks a row sent only once the broker has acknowledged its event: killed, or failed by the broker, "
            "at any moment, the relay loses nothing."),
    Rule(7, "Two relays may run at once: they never both publish a row, and the events of one order reach the broker "
            "in the order they were written."),
)


TOGETHER, THE_EVENT, ONLY_PENDING, NO_PUBLISH, RELAYS, ACKNOWLEDGED, IN_ORDER = RULES


STEPS = {
    "A": "state changes that fail half-way, or roll back",
    "B": "300 orders of one to three phones change state, both ways; then each of two again, the other way",
    "C": "the relay once, for the three oldest rows (one of them for another topic)",
    "D": "the broker stops answering while the relay publishes",
    "E": "two relays at once, each in a process of its own",
    "F": "the relay killed (SIGKILL) in its own process: before its second flush, after it, after its first commit",
    "G": "a last relay until nothing is left; the topic read back",
}

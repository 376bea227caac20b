"""Exercise 12's rules, as the notebook states them, and the steps of its check, as the notebook lists them."""
from flashsale.lab.exercises import Rule

DECISIONS = {"RESERVED", "SOLD_OUT", "PER_USER_LIMIT"}


RULES = (
    Rule(1, "An orderId seen before gets its first decision back, and nothing changes."),
    Rule(2, "A buyer's reserved units are counted in `keys.user_units`; an order that would take its buyer past "
            "`limit` is `PER_USER_LIMIT`."),
    Rule(3, "The stock must cover the quantity: else `SOLD_OUT`. Otherwise `RESERVED`, and the stock goes down by the "
            "quantity. The stock never goes below zero."),
    Rule(4, "An order that is refused takes nothing and counts nothing against its buyer."),
    Rule(5, "Each order is decided in one atomic step, in Redis: the inventory runs in several processes, each with "
            "many orders in flight, and one buyer's orders arrive at the same moment. Use the `redis` and `keys` you "
            "are given, and keep nothing in your process."),
)


SAME, LIMIT, STOCK, REFUSED, ATOMIC = RULES


STEPS = {
    "A": "Alice and Bob, a limit of 2, one order at a time",
    "B": "the last phone, one order at a time",
    "C": "each of those orders again, one at a time, after the stock and a buyer's units changed",
    "D": "250 buyers send 4 orders each, in 4 processes, each buyer's orders at the same moment",
    "E": "all 1,000 again, each in another process than the first time",
}


PROCESSES = 4

"""Exercise 11's rules, as the notebook states them, and the steps of its check, as the notebook lists them."""
from flashsale import events as ev
from flashsale.lab.exercises import Rule

NO_SALE = 2**31 - 1  # the hand-made orders belong to no sale, so they count in none


STATE = {ev.ORDER_SAVED: "PENDING", ev.ORDER_CONFIRMED: "CONFIRMED", ev.ORDER_CANCELLED: "CANCELLED"}


DECIDES = {ev.STOCK_RESERVED: "CONFIRMED", ev.STOCK_INSUFFICIENT: "CANCELLED"}


RULES = (
    Rule(1, "`order.created`: insert the `PENDING` row with the event's `order_id`, `sale_id`, `user_id`, "
            "`product_id` and `quantity`, unless the order has a row already; a row that is there stays as it is."),
    Rule(2, "`inventory.reserved` / `inventory.insufficient`: move the row to `CONFIRMED` / `CANCELLED`, with the "
            "event's `reason`, only if it is `PENDING`."),
    Rule(3, "Otherwise return the event that announces what the row says now: `order.saved` while it is `PENDING`, "
            "`order.confirmed` or `order.cancelled` (with the row's `reason`) once decided, however often the "
            "event comes: its first announcement may have been lost in a crash between the commit and the publish."),
    Rule(4, "Return `None` for an `order.created` whose row is already decided, for a decision about an order with "
            "no row, and for any other event."),
    Rule(5, "The rows are your only memory, written through `conn`, in the batch's transaction: a batch can fail "
            "after your handler ran, roll back, and come again."),
    Rule(6, "Two consumers may handle the same order at the same moment (during a rebalance, in two processes): "
            "each step must hold even while another transaction does the same step."),
)


INSERTS, MOVES, ANNOUNCES, NOTHING, ROWS_ONLY, AT_ONCE = RULES


STEPS = {
    "A": "each kind of event once, in turn",
    "B": "each kind again after its batch failed and rolled back",
    "C": "each kind again, late and out of turn, contrary decisions both ways, and one for an order never created",
    "D": "the same order twice at once, in two processes",
    "E": "your handler as the order service, in two processes, killed after each commit",
}

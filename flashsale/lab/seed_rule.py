"""The seed project's inventory rule, kept only to be broken in notebook 04.

DECR first; if the counter went below zero, INCR it back and say sold out.
Each command is atomic, yet the rule is wrong twice over:
- it remembers nothing, so an event delivered twice takes two units;
- between the DECR and the INCR anyone reading the counter sees it below zero.
`flashsale.rules.reservation` (one Lua script that remembers each order) fixes both.
"""


def reserve_decr_incr(redis, stock_key: str) -> str:
    left = redis.decr(stock_key)
    if left < 0:
        redis.incr(stock_key)
        return "SOLD_OUT"
    return "RESERVED"

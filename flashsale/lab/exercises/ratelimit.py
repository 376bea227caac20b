"""Exercise 16 (stretch): one token bucket per client, shared by every gateway, in the stack's real Redis.

The learner writes `allow(redis, client, rate, burst, now) -> bool`, keeping each client's
bucket under a key that contains the client's name. `now` is passed in (seconds), so the
check can play with time exactly; then 16 threads, as 16 gateways, ask at the same moment.
"""
from concurrent.futures import ThreadPoolExecutor

import redis as redis_py

from flashsale.lab.exercises import expect, passed, run_id
from flashsale.stack.control import Stack

T0 = 1024.0  # times are sums of powers of two, so every refill is exact in floating point
SKEW = 0.25  # how far one gateway's clock runs behind another's: 2 tokens at 8/s


def check(stack: Stack, allow) -> None:
    redis = redis_py.Redis.from_url(stack.wired().redis_url, max_connections=32)
    run = run_id()

    def ask(client: str, now: float, times: int = 1, rate: float = 8, burst: int = 4) -> list[bool]:
        answers = [allow(redis, f"{run}-{client}", rate, burst, now) for _ in range(times)]
        expect(all(a in (True, False, 0, 1) for a in answers),
               f"allow must return True or False; it returned {answers[0]!r}")
        return [bool(a) for a in answers]

    first = ask("alice", T0, 5)
    expect(first[:4] == [True] * 4, f"a new client starts with a full bucket: 4 requests at once (burst 4) must all "
           f"pass; yours answered {first[:4]}")
    expect(first[4] is False, "the 5th request at once (burst 4) must be refused: the bucket is empty")
    expect(ask("bob", T0, 4) == [True] * 4, "bob's bucket is not alice's: each client has its own")
    passed("a burst of 4 passes, the 5th is refused; each client has its own bucket")

    expect(ask("alice", T0 + 0.125, 2) == [True, False], "tokens come back at `rate` per second: 0.125 s at 8/s is "
           "exactly one more request (tokens += elapsed * rate)")
    expect(ask("alice", T0 + 0.1875) == [False], "half a token is not a request: refuse until a whole one is back")
    expect(ask("alice", T0 + 0.25) == [True], "two half tokens make one: a refused request must keep what was "
           "refilled (store the tokens and the time, also when you refuse)")
    expect(ask("alice", T0 + 10, 5) == [True] * 4 + [False], "after a long pause a client gets `burst` requests, "
           "not more: tokens = min(burst, ...)")
    passed("tokens refill at `rate`, never above `burst`, and a refused request keeps its refill")

    # The same instants, read on two gateways: the second's clock runs a quarter of a second behind the first's.
    fast, slow = T0 + 40, T0 + 40 - SKEW
    expect(ask("carol", fast, 5) == [True] * 4 + [False], "a new client's burst of 4 must pass, the 5th not")
    expect(ask("carol", slow) == [False], f"a gateway whose clock runs {SKEW} s behind let a request through an "
           "empty bucket: no time has passed for the bucket, whatever that clock says")
    expect(ask("carol", fast) == [False], f"a gateway whose clock runs {SKEW} s behind asked, and at that same instant "
           f"the next gateway let a request through an empty bucket: the slow one wrote its earlier time as the "
           f"bucket's `at`, so the next one refilled those {SKEW} s again. Never move `at` back: max(at, now)")
    expect(ask("carol", fast + 0.125) == [True], "an eighth of a second later one token is back, whatever a slow "
           "gateway did in between; yours refused it: time that runs backwards took tokens away. Refill by "
           "max(0, now - at)")
    passed(f"two gateways whose clocks differ by {SKEW} s: no extra tokens, none lost")

    now = T0 + 20
    with ThreadPoolExecutor(16) as gateways:
        answers = list(gateways.map(lambda _: allow(redis, f"{run}-crowd", 1, 20, now), range(400)))
    allowed = sum(map(bool, answers))
    expect(allowed == 20, f"16 gateways asked 400 times at once for one client with a burst of 20: {allowed} were "
           "allowed. Two gateways read the same tokens and both took one: read, refill, take and write in one "
           "atomic step (a Lua script)")
    passed("16 gateways at once, 400 requests, one client: exactly 20 allowed")

    keys = [k.decode() for k in redis.scan_iter(f"*{run}-*")]
    expect(keys, "your buckets must live in Redis, under a key that contains the client's name, so every gateway "
           "shares them")
    forever = [k for k in keys if redis.ttl(k) < 0]
    expect(not forever, f"{len(forever)} bucket keys never expire (such as {' '.join(forever[:1])}): one-time "
           "clients would fill Redis. EXPIRE a bucket once it would be full again anyway (burst / rate seconds)")
    passed("every bucket expires when it would be full again")
    print("All checks passed: compare with flashsale.services.http.RateLimiter, the gateway's bucket in one process.")

"""Exercise 16 (stretch): one token bucket per client, shared by every gateway, in the stack's real Redis.

The learner writes `allow(redis, client, rate, burst, now) -> bool`, keeping each client's bucket under a key
that contains the client's name. `now` is passed in (seconds), so the check can play with time exactly: it reads
each bucket's expiry off Redis (how long, not only whether there is one), spends bursts, refills by quarters of a
second, and asks through two gateways whose clocks are a second apart. Last, it runs the function as production
does: in gateway processes of their own (the function, defined in a notebook, handed to each by value with
cloudpickle), each a network hop from Redis, all asking for one client at once.
"""
import json
import math
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import cloudpickle
import redis as redis_py

from flashsale.lab.exercises import Rule, Wrong, expect, run_id, step

if TYPE_CHECKING:  # the gateway processes import this module: they need none of the stack's
    from flashsale.stack.control import Stack

RULES = (
    Rule(1, "Each client has its own bucket, in Redis, under a key that contains the client's name."),
    Rule(2, "A new client starts with a full bucket: `burst` tokens."),
    Rule(3, "Tokens come back at `rate` per second since the bucket's last update, never above `burst`."),
    Rule(4, "A request takes one whole token and is allowed, or is refused if there is none; a refused request "
            "keeps whatever was refilled."),
    Rule(5, "A gateway whose clock is behind the bucket's last update gets no token back and loses none: time "
            "elapsed below zero counts as zero, and the bucket's time never moves back."),
    Rule(6, "All of it is one atomic step: gateways, each a process of its own, may ask for the same client at "
            "the same moment."),
    Rule(7, "An idle bucket expires once it would be full again anyway: `burst / rate` seconds after its last "
            "update, rounded up, and at most a second more."),
)
OWN, FULL, REFILL, TAKE, CLOCKS, ATOMIC, EXPIRES = RULES
RATE, BURST = 2, 4  # a bucket is full again 2 s after its last update: longer than the check takes, by far
T0 = 1024.0  # times are sums of powers of two, so every refill is exact in floating point
SKEW = 1.0  # how far one gateway's clock runs behind another's: 2 tokens at 2/s
GATEWAYS, EACH = 4, 100  # gateway processes, and the requests each makes for one client, all at once
HOP_S = 0.002  # each gateway's Redis is a network hop away: a reply takes 2 ms more to reach it
STEPS = {
    "A": "one request: the bucket is in Redis, and expires when it would be full again",
    "B": "a burst from a new client, then from another",
    "C": "refills after half a second, a quarter, another quarter, a second and a half, and a long pause",
    "D": "two gateways whose clocks are a second apart",
    "E": f"{GATEWAYS} gateway processes, {GATEWAYS * EACH} requests at once for one client",
}


def obvious(redis, client: str, rate: float, burst: int, now: float) -> bool:
    """The obvious answer, and the subject of the notebook's prediction: the gateway's RateLimiter, its bucket moved
    into a Redis hash, with an EXPIRE."""
    key = f"ratelimit:{client}"
    tokens, last = redis.hmget(key, "tokens", "at")
    tokens = burst if tokens is None else float(tokens)
    last = now if last is None else float(last)
    tokens = min(burst, tokens + (now - last) * rate)
    redis.hset(key, mapping={"tokens": tokens - 1 if tokens >= 1 else tokens, "at": now})
    redis.expire(key, math.ceil(burst / rate))
    return tokens >= 1


def check(stack: "Stack", allow) -> None:
    url = stack.wired().redis_url
    redis = redis_py.Redis.from_url(url)
    run = run_id()

    def ask(client: str, now: float, times: int = 1, rate: float = RATE, burst: int = BURST) -> list[bool]:
        answers = [allow(redis, f"{run}-{client}", rate, burst, now) for _ in range(times)]
        expect(all(a in (True, False, 0, 1) for a in answers),
               f"allow must return True or False; it returned {answers[0]!r}", TAKE)
        return [bool(a) for a in answers]

    with step("A", STEPS["A"]):
        ask("erin", T0, rate=2, burst=20)
        keys = bucket_keys(redis, f"{run}-erin")
        expect(keys, "after a request of client 'erin', Redis holds no key with 'erin' in its name: a bucket in the "
               "gateway's memory is one bucket per gateway, not one per client. Keep it in Redis, under a key that "
               "contains the client's name", OWN)
        expiry(redis, keys, rate=2, burst=20)

    with step("B", STEPS["B"]):
        first = ask("alice", T0, 6)
        expect(first != [True] * 6, "6 requests at once with a burst of 4: all allowed. A request takes a token, and "
               "is refused when there is none", TAKE)
        expect(first == [True] * 4 + [False] * 2, f"6 requests at once from a new client, burst 4: {first}. A new "
               "client starts with a full bucket: the first 4 pass (burst tokens, each request one), the 5th and 6th "
               "not", FULL)
        expect(ask("bob", T0, 5) == [True] * 4 + [False], "bob's bucket is not alice's: each client has its own", OWN)
        expiry(redis, bucket_keys(redis, f"{run}-bob"), RATE, BURST)

    with step("C", STEPS["C"]):
        expect(ask("alice", T0 + 0.5, 2) == [True, False], "tokens come back at `rate` per second: 0.5 s at 2/s is "
               "exactly one more request (tokens += elapsed * rate)", REFILL)
        expect(ask("alice", T0 + 0.75) == [False], "0.25 s at 2/s is half a token, and half a token is not a "
               "request: refuse until a whole one is back", TAKE)
        expect(ask("alice", T0 + 1) == [True], "two half tokens make one: a refused request must keep what was "
               "refilled (store the tokens and the time, also when you refuse)", TAKE)
        got = ask("alice", T0 + 2.5, 4)
        expect(got == [True] * 3 + [False], f"1.5 s at 2/s is exactly 3 tokens: 4 requests then got {got}", REFILL)
        expect(ask("alice", T0 + 40, 5) == [True] * 4 + [False], "after a long pause a client gets `burst` "
               "requests, not more: tokens = min(burst, ...)", REFILL)
        expiry(redis, bucket_keys(redis, f"{run}-alice"), RATE, BURST)

    with step("D", STEPS["D"]):  # the same instants, read on two gateways: the second's clock is a second behind
        fast, slow = T0 + 80, T0 + 80 - SKEW
        expect(ask("carol", fast, 2) == [True, True], "a new client's first 2 requests must pass", FULL)
        expect(ask("carol", slow) == [True], f"a gateway whose clock runs {SKEW:g} s behind refused a request, though "
               "the bucket had 2 tokens: a clock behind the bucket's time adds nothing, and takes nothing either. "
               "Refill by max(0, now - at), then take a token as always", CLOCKS)
        expect(ask("carol", slow, 2) == [True, False], f"the gateway whose clock runs {SKEW:g} s behind must take "
               "the bucket's last token, then be refused: no time has passed for the bucket, whatever that clock "
               "says. Time that runs backwards must not take tokens away (max(0, now - at)), nor add any", CLOCKS)
        expect(ask("carol", fast) == [False], f"a gateway whose clock runs {SKEW:g} s behind asked, and at that same "
               f"instant the next gateway let a request through an empty bucket: the slow one wrote its earlier "
               f"time as the bucket's `at`, so the next one refilled that {SKEW:g} s again. Never move `at` back: "
               "max(at, now)", CLOCKS)
        expect(ask("carol", fast + 0.5) == [True], "half a second later one token is back, whatever a slow gateway "
               "did in between; yours refused it: time that runs backwards took tokens away. Refill by "
               "max(0, now - at)", CLOCKS)
        expiry(redis, bucket_keys(redis, f"{run}-carol"), RATE, BURST)

    with step("E", STEPS["E"]):
        answers = gateways(allow, url, f"{run}-crowd", rate=1, burst=20, now=T0 + 20)
        allowed = sum(answers)
        expect(allowed == 20, f"{GATEWAYS} gateway processes asked {len(answers)} times at once for one client with "
               f"a burst of 20: {allowed} were allowed. Two gateways read the same tokens and both took one: read, "
               "refill, take and write in one atomic step (a Lua script). A lock in one process does not stop "
               "another", ATOMIC)
    print("All checks passed: compare with flashsale.services.http.RateLimiter, the gateway's bucket in one process.")


def bucket_keys(redis, client: str) -> list[str]:
    return [k.decode() for k in redis.scan_iter(f"*{client}*")]


def expiry(redis, keys: list[str], rate: float, burst: int) -> None:
    """Every key of a bucket just updated expires burst / rate seconds from now (rounded up, and a second more at
    most); a quarter of a second less is the time the check took to look."""
    full = burst / rate
    for key in keys:
        ms = redis.pttl(key)
        expect(ms != -1, f"the bucket's key {key} never expires: one-time clients would fill Redis. EXPIRE it once "
               f"it would be full again anyway ({full:g} s at {rate:g}/s with a burst of {burst})", EXPIRES)
        left = max(ms, 0) / 1000  # -2: gone already
        expect(full - 0.25 <= left <= math.ceil(full) + 1, f"the bucket's key {key} expires in {left:.2f} s; it would "
               f"be full again in {full:g} s ({burst} tokens at {rate:g}/s). "
               + ("Sooner, and a client that comes back early gets a full bucket it has not earned" if left < full
                  else "Much later, and Redis keeps buckets nobody needs") + ": EXPIRE it in burst / rate seconds, "
               "rounded up", EXPIRES)


def gateways(allow, redis_url: str, client: str, rate: float, burst: int, now: float) -> list[bool]:
    """`GATEWAYS` processes, each given `allow` by value (it was defined in a notebook), each asking `EACH` times for
    `client` once all are ready; every answer."""
    module = sys.modules.get(getattr(allow, "__module__", "") or "")
    by_value = module is not None and module.__name__ != "__main__" and not module.__name__.startswith("flashsale")
    if by_value:  # a function of a module the gateways may not import (a test's): its code travels with it
        cloudpickle.register_pickle_by_value(module)
    try:
        payload = cloudpickle.dumps((allow, redis_url, client, rate, burst, now))
    except Exception as error:  # noqa: BLE001  (pickling fails in many ways, each the same news here)
        raise Wrong(f"allow cannot be sent to a gateway process ({type(error).__name__}: {error}): it holds an object "
                    "of this kernel, a lock or a client, which no other gateway shares. Every gateway runs allow in a "
                    "process of its own: what they share is in Redis", ATOMIC) from None
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    children = [subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=env) for _ in range(GATEWAYS)]
    try:
        for child in children:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write(len(payload).to_bytes(8, "big") + payload)
            child.stdin.flush()
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != b"ready":
                raise RuntimeError(f"a gateway process did not start:\n{failure(child)}")
        for child in children:  # all at once: each was waiting for this line
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            child.stdin.flush()
        answers: list[bool] = []
        for child in children:
            out, _ = child.communicate(timeout=120)
            if child.returncode != 0:
                raise RuntimeError(f"a gateway process failed:\n{failure(child)}")
            answers += json.loads(out)
        return answers
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                child.wait()


def failure(child: subprocess.Popen) -> str:
    if child.poll() is None:
        child.kill()
    _, errors = child.communicate()
    return errors.decode(errors="replace")[-3000:]


class FarRedis(redis_py.Redis):
    """A Redis a network hop away: each reply reaches the gateway `HOP_S` later, as on a real network. Two steps
    that are not one atomic step then leave another gateway time to come in between."""

    def execute_command(self, *args, **options):
        try:
            return super().execute_command(*args, **options)
        finally:
            time.sleep(HOP_S)

    def pipeline(self, transaction=True, shard_hint=None):
        return FarPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


class FarPipeline(redis_py.client.Pipeline):
    def execute(self, raise_on_error: bool = True):
        try:
            return super().execute(raise_on_error)
        finally:
            time.sleep(HOP_S)

    def immediate_execute_command(self, *args, **options):
        try:
            return super().immediate_execute_command(*args, **options)
        finally:
            time.sleep(HOP_S)


def _gateway() -> None:
    """One gateway process: read the function and the request, say ready, wait for go, ask EACH times."""
    size = int.from_bytes(sys.stdin.buffer.read(8), "big")
    allow, redis_url, client, rate, burst, now = cloudpickle.loads(sys.stdin.buffer.read(size))
    (redis := FarRedis.from_url(redis_url)).ping()
    print("ready", flush=True)
    sys.stdin.buffer.readline()
    print(json.dumps([bool(allow(redis, client, rate, burst, now)) for _ in range(EACH)]), flush=True)


if __name__ == "__main__":
    _gateway()

"""Pure pieces of the HTTP edge: the token bucket and the body limit."""
import asyncio

from flashsale.services.http import BodyLimit, RateLimiter


def test_rate_limiter_allows_a_burst_then_refuses_then_refills(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("flashsale.services.http.time.monotonic", lambda: clock[0])
    limiter = RateLimiter(rate=2, burst=3)
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")  # other clients have their own bucket
    clock[0] += 0.5  # one token back at 2/s
    assert limiter.allow("a") and not limiter.allow("a")


def test_rate_limiter_off_when_rate_is_zero():
    assert all(RateLimiter(0, 1).allow("a") for _ in range(1000))


def run_app(limit: int, body_chunks: list[bytes], content_length: str | None):
    sent = []

    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    chunks = iter(body_chunks)

    async def receive():
        chunk = next(chunks, b"")
        return {"type": "http.request", "body": chunk, "more_body": chunk != b""}

    async def send(message):
        sent.append(message)

    headers = [(b"content-length", content_length.encode())] if content_length is not None else []
    asyncio.run(BodyLimit(app, limit)({"type": "http", "headers": headers}, receive, send))
    return sent[0]["status"]


def test_body_limit_by_declared_length_and_by_what_arrives():
    assert run_app(10, [b"12345"], "5") == 200
    assert run_app(10, [b"x" * 11], "11") == 413
    assert run_app(10, [b"123456", b"123456"], None) == 413  # chunked: counted as it arrives
    assert run_app(10, [b"1"], "abc") == 400

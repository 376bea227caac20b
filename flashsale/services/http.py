"""What the HTTP services share: the order body, the error body, a body limit, a rate limit, the admin check."""
import hmac
import time
from collections.abc import Callable
from typing import Annotated, Any

import psycopg
import psycopg_pool
import redis
from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class OrderRequest(BaseModel):
    """The body of the contract's POST, for the gateway and the sync shop alike."""

    model_config = ConfigDict(strict=True, extra="forbid")
    userId: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    # Any text but control characters: the shop looks it up in PostgreSQL, which cannot hold a NUL.
    productId: Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f]{1,64}$")]
    quantity: int = Field(ge=1)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        self.status, self.code, self.message, self.headers = status, code, message, headers


def admin_only(token: str) -> Callable[[str], None]:
    """A dependency that lets a request through with `Authorization: Bearer <token>`, checked before the body is
    read and in constant time; the token itself is never logged."""

    def require_admin(authorization: Annotated[str, Header()] = "") -> None:
        if not hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode()):
            raise ApiError(401, "UNAUTHORIZED", "An admin token is required.")

    return require_admin


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def install_error_handlers(app: FastAPI) -> None:
    """Every error, ours or the framework's, answers {"error": {"code", "message"}}."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error_body(error.code, error.message), error.status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        details = [{"loc": [str(part) for part in e["loc"]], "msg": e["msg"], "type": e["type"]}
                   for e in error.errors()]
        return JSONResponse(error_body("VALIDATION_ERROR", "The request is malformed.", details=details), 422)

    @app.exception_handler(redis.RedisError)
    @app.exception_handler(psycopg.Error)
    @app.exception_handler(psycopg_pool.PoolTimeout)
    async def unavailable(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse(error_body("UNAVAILABLE", f"A backing server is unavailable ({type(error).__name__}); "
                                       "retry."), 503, headers={"Retry-After": "1"})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        if error.status_code == 400:  # FastAPI could not parse the body (not UTF-8, nested too deep): malformed
            return JSONResponse(error_body("VALIDATION_ERROR", "The request is malformed."), 422)
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "BODY_TOO_LARGE"}.get(error.status_code, "HTTP_ERROR")
        return JSONResponse(error_body(code, str(error.detail)), error.status_code, headers=error.headers)


class BodyLimit:
    """ASGI middleware: refuse bodies over `limit` bytes with 413, counted as they arrive (chunked too)."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            return await too_large(send) if declared.isdigit() else await bad_length(send)
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge()
            return message

        try:
            await self.app(scope, counting_receive, send)
        except BodyTooLarge:
            await too_large(send)


class BodyTooLarge(HTTPException):
    """An HTTPException, because FastAPI lets only those through while it reads a body (any other error is a 400)."""

    def __init__(self) -> None:
        super().__init__(413, "The body is over the size limit.")


async def too_large(send: Send) -> None:
    await _send_error(send, 413, "BODY_TOO_LARGE", "The body is over the size limit.")


async def bad_length(send: Send) -> None:
    await _send_error(send, 400, "BAD_REQUEST", "Content-Length is not a number.")


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    body = JSONResponse(error_body(code, message)).body
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class RateLimiter:
    """A token bucket per client: `rate` requests a second, bursts up to `burst`. rate 0 = off."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self.buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, last refill)

    def allow(self, client: str) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        tokens, last = self.buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if len(self.buckets) > 100_000:
            self.buckets.clear()  # bounded memory under a flood of spoofed clients
        self.buckets[client] = (tokens - 1, now) if tokens >= 1 else (tokens, now)
        return tokens >= 1

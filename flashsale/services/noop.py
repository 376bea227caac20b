"""The ceiling: the gateway's server stack with nothing behind it (same body parsing, same uvicorn settings).

`flashsale bench` runs it beside the stack (`Stack.launch("noop")`), to measure what HTTP alone costs.
"""
from typing import Any

from fastapi import APIRouter, FastAPI

from flashsale.services.http import OrderRequest
from flashsale.services.runner import run_http_service
from flashsale.settings import Settings

routes = APIRouter()


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(title="flashsale no-op")
    app.include_router(routes)
    return app


@routes.post("/noop", status_code=202, response_model=None)
async def noop(order: OrderRequest) -> dict[str, Any]:
    return {"orderId": "-", "status": "PENDING"}


@routes.get("/healthz", response_model=None)
async def healthz() -> dict[str, Any]:
    return {"healthy": True}


if __name__ == "__main__":
    settings = Settings()
    run_http_service(create_app, settings, settings.gateway_port)

"""The ceiling: the gateway's server stack with nothing behind it (same body parsing, same uvicorn settings)."""
from fastapi import FastAPI

from flashsale.services.http import OrderRequest, serve
from flashsale.settings import Settings

app = FastAPI(title="flashsale no-op")


@app.post("/noop", status_code=202)
async def noop(order: OrderRequest):
    return {"orderId": "-", "status": "PENDING"}


@app.get("/healthz")
async def healthz():
    return {"healthy": True}


if __name__ == "__main__":
    settings = Settings()
    serve(app, settings, settings.gateway_port)

"""`flashsale scale gateway N`: several gateways serve one sale, and every one of them tells its buyers everything.

Each gateway reads every partition of notification.events, so a buyer whose WebSocket is on one gateway hears
the outcome of an order placed through another (a load balancer sends a browser's page and its POST anywhere).
"""
import asyncio
import json
import time

import pytest
import websockets

from flashsale.harness.checks import invariants, settle
from flashsale.harness.load import run_buyers

BUYERS = 200
FINAL = {"CONFIRMED", "CANCELLED"}


async def watch_and_buy(watch_url: str, buy_url: str, users: list[str], timeout: float = 90):
    """Every buyer's WebSocket on `watch_url`, their POSTs on `buy_url`; the final status each socket heard."""
    heard: dict[str, dict[str, str]] = {user: {} for user in users}
    sockets = [await websockets.connect(f"{watch_url.replace('http', 'ws', 1)}/ws?userId={user}", open_timeout=10)
               for user in users]

    async def listen(user, socket):
        async for text in socket:
            message = json.loads(text)
            if message["type"] == "order_update" and message["data"]["status"] in FINAL:
                heard[user][message["data"]["orderId"]] = message["data"]["status"]

    listeners = [asyncio.create_task(listen(u, s)) for u, s in zip(users, sockets, strict=True)]
    try:
        race = await asyncio.to_thread(run_buyers, "gateway", buy_url, users=users, progress=False)
        wanted = {b.user: b.order_id for b in race.accepted}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(o not in heard[u] for u, o in wanted.items()):
            await asyncio.sleep(0.2)
        for listener in listeners:
            assert not listener.done(), listener.exception()  # a socket that died would hear nothing
    finally:
        for listener in listeners:
            listener.cancel()
        for socket in sockets:
            await socket.close()
    return race, wanted, heard


@pytest.mark.timeout(300)
def test_buyers_watching_one_gateway_hear_the_outcome_of_orders_placed_through_another(stack, fresh_sale):
    stack.scale("gateway", 2)
    try:
        gateways = sorted(stack.processes("gateway").values(), key=lambda p: p.instance)
        assert len({g.url for g in gateways}) == 2 and stack.status()["services"]["gateway.1"]["healthy"]
        users = [f"two-gateways-{i:04d}" for i in range(BUYERS)]
        race, wanted, heard = asyncio.run(watch_and_buy(gateways[1].url, gateways[0].url, users))
    finally:
        stack.scale("gateway", 1)

    assert race.count(500, 502, 503, 504, 0) == 0, race.statuses()
    deaf = [u for u, order in wanted.items() if order not in heard[u]]
    assert not deaf, f"{len(deaf)} of {len(wanted)} buyers never heard their order's outcome on the other gateway"
    assert all(set(heard[u]) <= {wanted.get(u)} for u in users), "a buyer heard someone else's order"
    wired = stack.wired()
    assert settle(wired, list(wanted.values()), timeout=60) is not None
    state = invariants(wired, fresh_sale.saleId, list(wanted.values()))
    assert state.ok and state.lost == 0 and state.confirmed == 100, state.as_dict()
    assert list(stack.processes("gateway")) == ["gateway"], "scaled back to one gateway"

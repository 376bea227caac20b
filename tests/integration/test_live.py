"""Live conference mode: an audience of 200 phones, with the protections on."""
import asyncio
import json
import os
import signal
import subprocess
import sys

import aiohttp
import httpx
import pytest

from flashsale import live
from flashsale.settings import Settings
from flashsale.stack.control import Stack
from flashsale.stack.processes import free_port

AUDIENCE = 200


@pytest.fixture(scope="module")
def public_stack(tmp_path_factory):
    # As `flashsale up --public` does: the stack brings its private admin token to Settings' rule.
    stack = Stack(Settings(home=tmp_path_factory.mktemp("live"), gateway_port=free_port(), shop_port=free_port(),
                           psp_port=free_port()),
                  public=True)
    stack.up(stock=50)
    yield stack
    stack.down()


def test_public_mode_turns_the_protections_on(public_stack):
    settings = public_stack.settings
    assert settings.rate_limit_per_s > 0
    assert settings.admin_token != Settings.model_fields["admin_token"].default and len(settings.admin_token) >= 24
    assert (public_stack.home / "admin-token").stat().st_mode & 0o077 == 0  # only its owner may read it
    gateway = public_stack.wired().gateway_url
    default = httpx.post(f"{gateway}/api/admin/reset", headers={"Authorization": "Bearer flashsale-admin"})
    assert default.status_code == 401
    token = httpx.post(f"{gateway}/api/admin/reset", headers={"Authorization": f"Bearer {settings.admin_token}"},
                       json={"stock": 50})
    assert token.status_code == 200
    log = (public_stack.home / "logs" / "gateway.log").read_text()
    assert settings.admin_token not in log


def test_a_gateway_started_by_hand_in_public_mode_refuses_the_default_admin_token(tmp_path):
    """Not only the launcher: `python -m flashsale.services.gateway` with FLASHSALE_PUBLIC=1 must not bind every
    interface with the token everyone knows (and no rate limit)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    env.update(FLASHSALE_PUBLIC="1", FLASHSALE_HOME=str(tmp_path), FLASHSALE_GATEWAY_PORT=str(free_port()))
    gateway = subprocess.Popen([sys.executable, "-m", "flashsale.services.gateway"], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = gateway.communicate(timeout=30)
    finally:
        gateway.kill()  # a gateway that started after all would serve until killed
        gateway.wait()
    assert gateway.returncode not in (0, -signal.SIGKILL), "the gateway started in public mode with the default token"
    assert "FLASHSALE_ADMIN_TOKEN" in stderr and "public mode" in stderr, stderr[-2000:]


def test_a_later_command_keeps_public_mode(public_stack):
    again = Stack(Settings(home=public_stack.home))
    assert again.settings.public and again.settings.admin_token == public_stack.settings.admin_token


def test_qr_code_for_the_buyer_url(public_stack):
    url = live.buyer_url(public_stack.settings.gateway_port)
    assert url.endswith(f":{public_stack.settings.gateway_port}/")
    assert live.qr_svg(url).startswith("<svg") and "▀" in live.qr_text(url) + "▄"


async def audience_member(i: int, gateway: str) -> tuple[int, dict | None]:
    """One phone: its own address, its own WebSocket, one Buy Now, and the outcome it is told."""
    connector = aiohttp.TCPConnector(local_addr=(f"127.0.1.{i % 250 + 1}", 0))
    user = f"phone-{i}"
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.ws_connect(f"{gateway.replace('http', 'ws')}/ws?userId={user}") as socket:
            async with session.post(f"{gateway}/api/orders",
                                    json={"userId": user, "productId": "FLASH_SALE_PRODUCT_001", "quantity": 1}) as r:
                status, body = r.status, await r.json()
            if status != 202:
                return status, None
            async with asyncio.timeout(60):
                async for message in socket:
                    update = json.loads(message.data)
                    if update["type"] == "order_update" and update["data"]["orderId"] == body["orderId"] \
                            and update["data"]["status"] in ("CONFIRMED", "CANCELLED"):  # final, not RESERVED
                        return status, update["data"]


def test_two_hundred_phones_each_hear_their_own_outcome(public_stack):
    public_stack.reset(stock=50)
    gateway = public_stack.wired().gateway_url

    async def everyone():
        return await asyncio.gather(*(audience_member(i, gateway) for i in range(AUDIENCE)))

    results = asyncio.run(everyone())
    accepted = [update for status, update in results if status == 202]
    assert all(status in (202, 409) for status, _ in results), [s for s, _ in results]
    assert all(update is not None for update in accepted), "a phone never heard of its order"
    confirmed = [u for u in accepted if u["status"] == "CONFIRMED"]
    assert len(confirmed) == 50
    assert len({u["userId"] for u in accepted}) == len(accepted)  # each heard its own, not a neighbour's
    print(f"audience: {AUDIENCE} phones, {len(accepted)} accepted, {len(confirmed)} confirmed, "
          f"{AUDIENCE - len(accepted)} answered sold out at once")


def test_a_flood_from_one_client_meets_429_while_others_are_served(public_stack):
    public_stack.reset(stock=10_000, per_user_limit=10_000)
    gateway = public_stack.wired().gateway_url
    body = {"userId": "flooder", "productId": "FLASH_SALE_PRODUCT_001", "quantity": 1}
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.2.1")) as flooder:
        answers = [flooder.post(f"{gateway}/api/orders", json=body) for _ in range(40)]
    codes = [a.status_code for a in answers]
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.2.2")) as neighbour:
        served = neighbour.post(f"{gateway}/api/orders", json={**body, "userId": "neighbour"})
    assert codes.count(429) >= 20 and 500 not in codes
    assert served.status_code == 202
    limited = next(a for a in answers if a.status_code == 429)
    assert limited.json()["error"]["code"] == "RATE_LIMITED"
    assert "Retry-After" in limited.headers

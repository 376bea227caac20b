"""The payment provider refunds: an order's succeeded charge once, a key's answer for good, bad input a 4xx."""
import asyncio
import uuid

import httpx
import pytest

from flashsale.adapters import postgres, psp

pytestmark = pytest.mark.broker_free  # the provider and PostgreSQL only: the same on either broker


@pytest.fixture
def provider(stack, wired):
    """The session's payment provider, put back as the settings say after each test."""
    yield lambda **change: psp.behaviour(wired.psp_url, wired.admin_token, **change)
    psp.behaviour(wired.psp_url, wired.admin_token, delayMs=wired.payment_delay_ms,
                  failureRate=wired.payment_failure_rate, outageSeconds=0)


def charged(url: str) -> str:
    order_id = f"refund-{uuid.uuid4()}"
    answer = httpx.post(f"{url}/charges", json={"orderId": order_id, "amount": 119_900},
                        headers={"Idempotency-Key": order_id}, timeout=10)
    assert answer.status_code == 201, answer.text
    return order_id


def refund(url: str, order_id: str, key: str) -> httpx.Response:
    return httpx.post(f"{url}/refunds", json={"orderId": order_id}, headers={"Idempotency-Key": key}, timeout=10)


def refunds_of(settings, order_id: str) -> int:
    with postgres.connect(settings.database_url) as pg:
        return postgres.scalar(pg, "SELECT count(*) FROM refunds WHERE order_id = %s", (order_id,))


def test_a_refund_takes_back_the_orders_charge_and_the_same_key_again_refunds_nothing(wired, provider):
    order_id = charged(wired.psp_url)
    first, again = refund(wired.psp_url, order_id, order_id), refund(wired.psp_url, order_id, order_id)

    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["orderId"] == order_id and first.json()["status"] == "refunded"
    assert again.json() == first.json()
    assert [c["status"] for c in psp.charges(wired.psp_url, order_id)] == ["refunded"]
    assert refunds_of(wired, order_id) == 1


def test_twenty_refunds_of_one_order_at_once_refund_its_charge_once(wired, provider):
    order_id = charged(wired.psp_url)

    async def at_once() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=10) as client:
            return await asyncio.gather(*(client.post(f"{wired.psp_url}/refunds", json={"orderId": order_id},
                                                      headers={"Idempotency-Key": order_id}) for _ in range(20)))

    answers = asyncio.run(at_once())

    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.json()["refundId"] for a in answers}) == 1
    assert refunds_of(wired, order_id) == 1


def test_another_key_or_an_order_never_charged_has_nothing_to_refund(wired, provider):
    order_id = charged(wired.psp_url)
    assert refund(wired.psp_url, order_id, order_id).status_code == 201

    other_key = refund(wired.psp_url, order_id, f"other-{uuid.uuid4()}")
    never_charged = refund(wired.psp_url, f"never-{uuid.uuid4()}", "some-key")

    for answer in (other_key, never_charged):
        assert answer.status_code == 409 and answer.json()["error"]["code"] == "NOTHING_TO_REFUND", answer.text
    assert refunds_of(wired, order_id) == 1


def test_an_outage_answers_503_to_a_refund_and_refunds_nothing_until_it_is_over(wired, provider):
    order_id = charged(wired.psp_url)
    provider(outageSeconds=30)

    down = refund(wired.psp_url, order_id, order_id)
    assert down.status_code == 503 and down.json()["error"]["code"] == "PROVIDER_UNAVAILABLE"
    assert [c["status"] for c in psp.charges(wired.psp_url, order_id)] == ["succeeded"]

    provider(outageSeconds=0)
    assert refund(wired.psp_url, order_id, order_id).status_code == 201  # the retry, with the same key
    assert [c["status"] for c in psp.charges(wired.psp_url, order_id)] == ["refunded"]


@pytest.mark.parametrize("body, headers", [
    (b"{not json", {"Idempotency-Key": "k"}),
    (b'{"orderId": "o-1"}', {}),  # no key
    (b'{"orderId": "o-1"}', {"Idempotency-Key": ""}),
    (b'{"orderId": 7}', {"Idempotency-Key": "k"}),
    (b'{"orderId": "o\\u0000"}', {"Idempotency-Key": "k"}),
    (b'{"orderId": "o-1", "amount": 5}', {"Idempotency-Key": "k"}),
    (b"[]", {"Idempotency-Key": "k"}),
    (b'{"orderId": "' + b"x" * 20_000 + b'"}', {"Idempotency-Key": "k"}),
], ids=["bad-json", "no-key", "empty-key", "number-id", "nul-in-id", "extra-field", "a-list", "too-large"])
def test_a_bad_refund_request_gets_a_4xx_with_the_contracts_error_body(wired, provider, body, headers):
    answer = httpx.post(f"{wired.psp_url}/refunds", content=body, timeout=10,
                        headers={"Content-Type": "application/json", **headers})

    assert 400 <= answer.status_code < 500, answer.text
    error = answer.json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)

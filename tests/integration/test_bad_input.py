"""Bad input, at the HTTP edge and on the topics: always a 4xx with the contract's error body, never a 5xx,
and a poison message goes to its dead-letter topic without stopping the consumer behind it."""
import asyncio
import http.client
import json
import time
import uuid

import httpx
import pytest
import websockets

from flashsale.adapters import kafka
from flashsale.events import INVENTORY_EVENTS, NOTIFICATION_EVENTS, ORDER_EVENTS, dead_letter_topic
from flashsale.harness.checks import invariants, settle
from flashsale.lab import replay

PRODUCT = "FLASH_SALE_PRODUCT_001"
GOOD = {"userId": "buyer-1", "productId": PRODUCT, "quantity": 1}
JSON = {"Content-Type": "application/json"}
BAD_REQUEST = "VALIDATION_ERROR"


def order(**changes) -> dict:
    """The good body with some fields changed; a field set to ... is left out."""
    return {k: v for k, v in {**GOOD, **changes}.items() if v is not ...}


def raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def chunks(size: int):
    yield b'{"userId": "buyer-1", "pad": "'
    for _ in range(size // 1024):
        yield b"x" * 1024
    yield b'"}'


# (path, request, status, error code or None). `request` holds httpx keyword arguments.
POST = "POST /api/orders"
GATEWAY = {
    "bad JSON": (POST, {"content": b'{"userId": "buyer-1",', "headers": JSON}, 422, BAD_REQUEST),
    "not JSON at all": (POST, {"content": b"buy me a phone", "headers": JSON}, 422, BAD_REQUEST),
    "empty body": (POST, {"content": b"", "headers": JSON}, 422, BAD_REQUEST),
    "quantity a string": (POST, {"json": order(quantity="1")}, 422, BAD_REQUEST),
    "quantity a float": (POST, {"json": order(quantity=1.5)}, 422, BAD_REQUEST),
    "quantity true": (POST, {"json": order(quantity=True)}, 422, BAD_REQUEST),
    "quantity null": (POST, {"json": order(quantity=None)}, 422, BAD_REQUEST),
    "quantity 0": (POST, {"json": order(quantity=0)}, 422, BAD_REQUEST),
    "quantity -1": (POST, {"json": order(quantity=-1)}, 422, BAD_REQUEST),
    "quantity over the per-user limit": (POST, {"json": order(quantity=2)}, 422, "OVER_PER_USER_LIMIT"),
    "quantity 10**30": (POST, {"json": order(quantity=10**30)}, 422, "OVER_PER_USER_LIMIT"),
    "quantity NaN": (POST, {"content": raw(f'{{"userId": "b", "productId": "{PRODUCT}", "quantity": NaN}}'),
                            "headers": JSON}, 422, BAD_REQUEST),
    "quantity 1e400": (POST, {"content": raw(f'{{"userId": "b", "productId": "{PRODUCT}", "quantity": 1e400}}'),
                              "headers": JSON}, 422, BAD_REQUEST),
    "userId missing": (POST, {"json": order(userId=...)}, 422, BAD_REQUEST),
    "productId missing": (POST, {"json": order(productId=...)}, 422, BAD_REQUEST),
    "quantity missing": (POST, {"json": order(quantity=...)}, 422, BAD_REQUEST),
    "empty object": (POST, {"json": {}}, 422, BAD_REQUEST),
    "an extra field": (POST, {"json": order(price=0)}, 422, BAD_REQUEST),
    "userId empty": (POST, {"json": order(userId="")}, 422, BAD_REQUEST),
    "userId 65 characters": (POST, {"json": order(userId="u" * 65)}, 422, BAD_REQUEST),
    "userId with a space": (POST, {"json": order(userId="buyer 1")}, 422, BAD_REQUEST),
    "userId with a slash": (POST, {"json": order(userId="../etc")}, 422, BAD_REQUEST),
    "userId with markup": (POST, {"json": order(userId="<script>")}, 422, BAD_REQUEST),
    "userId not ASCII": (POST, {"json": order(userId="bü𝔶er")}, 422, BAD_REQUEST),
    "userId with NUL": (POST, {"json": order(userId="buyer\x00")}, 422, BAD_REQUEST),
    "userId a number": (POST, {"json": order(userId=123)}, 422, BAD_REQUEST),
    "userId a list": (POST, {"json": order(userId=["buyer-1"])}, 422, BAD_REQUEST),
    "productId unknown": (POST, {"json": order(productId="NOPE")}, 404, "UNKNOWN_PRODUCT"),
    "productId empty": (POST, {"json": order(productId="")}, 422, BAD_REQUEST),
    "productId 65 characters": (POST, {"json": order(productId="P" * 65)}, 422, BAD_REQUEST),
    "productId with NUL": (POST, {"json": order(productId=PRODUCT + "\x00")}, 422, BAD_REQUEST),
    "body over 16 KiB": (POST, {"json": order(pad="x" * 17_000)}, 413, "BODY_TOO_LARGE"),
    "chunked body over 16 KiB": (POST, {"content": chunks(20_000), "headers": JSON}, 413, "BODY_TOO_LARGE"),
    "text/plain": (POST, {"content": json.dumps(GOOD).encode(), "headers": {"Content-Type": "text/plain"}},
                   422, BAD_REQUEST),
    "a form": (POST, {"data": GOOD}, 422, BAD_REQUEST),
    "JSON list": (POST, {"json": [GOOD]}, 422, BAD_REQUEST),
    "JSON string": (POST, {"json": "one phone please"}, 422, BAD_REQUEST),
    "JSON number": (POST, {"json": 42}, 422, BAD_REQUEST),
    "JSON null": (POST, {"content": b"null", "headers": JSON}, 422, BAD_REQUEST),
    "invalid UTF-8": (POST, {"content": b'{"userId": "\xff\xfe", "productId": "P", "quantity": 1}', "headers": JSON},
                      422, BAD_REQUEST),
    "a lone surrogate": (POST, {"content": raw(r'{"userId": "\ud800", "productId": "P", "quantity": 1}'),
                                "headers": JSON}, 422, BAD_REQUEST),
    "a lone surrogate as a key": (POST, {"content": raw(r'{"\ud800": 1, "userId": "b", "productId": "P", '
                                                        r'"quantity": 1}'), "headers": JSON}, 422, BAD_REQUEST),
    "nested 5,000 deep": (POST, {"content": b"[" * 5000 + b"]" * 5000, "headers": JSON}, 422, BAD_REQUEST),
    "Idempotency-Key over 128": (POST, {"json": GOOD, "headers": {"Idempotency-Key": "k" * 129}}, 422, BAD_REQUEST),
    "unknown order": (f"GET /api/orders/{uuid.uuid4()}", {}, 404, "ORDER_NOT_FOUND"),
    "order id 65 characters": (f"GET /api/orders/{'o' * 65}", {}, 422, BAD_REQUEST),
    "order id with NUL": ("GET /api/orders/%00", {}, 422, BAD_REQUEST),
    "order id of invalid UTF-8": ("GET /api/orders/%ff%fe", {}, 422, BAD_REQUEST),
    "unknown product": ("GET /api/products/NOPE", {}, 404, "UNKNOWN_PRODUCT"),
    "unknown route": ("GET /api/nothing-here", {}, 404, "NOT_FOUND"),
    "GET the order collection": ("GET /api/orders", {}, 405, "METHOD_NOT_ALLOWED"),
    "DELETE an order": (f"DELETE /api/orders/{uuid.uuid4()}", {}, 405, "METHOD_NOT_ALLOWED"),
    "reset without a token": ("POST /api/admin/reset", {}, 401, "UNAUTHORIZED"),
    "reset with a wrong token": ("POST /api/admin/reset", {"headers": {"Authorization": "Bearer guess"}},
                                 401, "UNAUTHORIZED"),
    "reset with the token but no Bearer": ("POST /api/admin/reset", {"headers": {"Authorization": "flashsale-admin"}},
                                           401, "UNAUTHORIZED"),
    "reset with a bad body and no token": ("POST /api/admin/reset", {"json": {"stock": -1}}, 401, "UNAUTHORIZED"),
    "reset with the token and a bad body": ("POST /api/admin/reset", {"json": {"stock": -1}, "headers": {
        "Authorization": "Bearer flashsale-admin"}}, 422, BAD_REQUEST),
}

SHOP = {
    "bad JSON": ({"content": b'{"userId": ', "headers": JSON}, 422),
    "quantity a string": ({"json": order(quantity="1")}, 422),
    "quantity 0": ({"json": order(quantity=0)}, 422),
    "quantity missing": ({"json": order(quantity=...)}, 422),
    "userId 65 characters": ({"json": order(userId="u" * 65)}, 422),
    "productId with NUL": ({"json": order(productId=PRODUCT + "\x00")}, 422),
    "JSON list": ({"json": [GOOD]}, 422),
    "body over 16 KiB": ({"json": order(pad="x" * 17_000)}, 413),
}


def assert_error_body(response: httpx.Response | http.client.HTTPResponse, body: bytes, status: int,
                      code: str | None) -> None:
    got = response.status_code if isinstance(response, httpx.Response) else response.status
    assert got < 500, f"a {got} for bad input: {body[:300]!r}"
    assert got == status, body[:300]
    error = json.loads(body)["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str), error
    if code:
        assert error["code"] == code, error


@pytest.mark.parametrize("case", GATEWAY)
def test_the_gateway_answers_bad_requests_with_a_4xx(stack, wired, case):
    route, request, status, code = GATEWAY[case]
    method, path = route.split(" ", 1)
    response = httpx.request(method, wired.gateway_url + path, timeout=30, **request)
    assert_error_body(response, response.content, status, code)


def announce(settings, content_length: str) -> tuple[http.client.HTTPResponse, bytes]:
    """POST a small body under a Content-Length of our choosing."""
    conn = http.client.HTTPConnection("127.0.0.1", settings.gateway_port, timeout=30)
    conn.putrequest("POST", "/api/orders")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", content_length)
    conn.endheaders(json.dumps(GOOD).encode())
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


@pytest.mark.parametrize("content_length", [str(16 * 1024 + 1), str(2**63 - 1)])
def test_a_huge_content_length_is_refused_without_waiting_for_the_body(stack, wired, content_length):
    response, body = announce(wired, content_length)  # far fewer bytes than announced: it must not wait for them
    assert_error_body(response, body, 413, "BODY_TOO_LARGE")


def test_a_content_length_beyond_64_bits_is_refused_by_the_http_server(stack, wired):
    response, body = announce(wired, "9" * 30)
    assert response.status == 400, body  # uvicorn's parser refuses it before our code runs: its own text body


@pytest.mark.parametrize("checkout", ["naive", "locked"])
@pytest.mark.parametrize("case", SHOP)
def test_the_shop_answers_bad_requests_with_a_4xx(stack, wired, checkout, case):
    request, status = SHOP[case]
    response = httpx.post(f"{wired.shop_url}/{checkout}/orders", timeout=30, **request)
    assert_error_body(response, response.content, status, None)


@pytest.mark.parametrize("checkout", ["naive", "locked"])
def test_the_shop_knows_no_other_product(stack, wired, checkout):
    response = httpx.post(f"{wired.shop_url}/{checkout}/orders", timeout=30,
                          json={"userId": "alice", "productId": "NOPE", "quantity": 1})
    assert_error_body(response, response.content, 404, "UNKNOWN_PRODUCT")


def dead_letters(settings, topic: str, marker: str) -> list[bytes]:
    return [m.value() for m in replay.read_topic(settings, dead_letter_topic(topic)) if marker.encode() in m.value()]


def test_poison_messages_go_to_the_dead_letter_topics_and_the_consumers_go_on(stack, wired, fresh_sale):
    marker = f"poison-{uuid.uuid4()}"
    event = {"eventId": marker, "type": "order.created", "occurredAt": "2026-01-01T00:00:00Z", "orderId": marker,
             "userId": "poisoner", "productId": PRODUCT, "quantity": 1, "saleId": fresh_sale.saleId}
    poison = [b"\xff\xfe" + marker.encode(),  # not JSON, not even UTF-8
              json.dumps({"type": "order.created", "orderId": marker}).encode(),  # JSON, most fields missing
              # Events in the right shape that no table can hold: they must not block the partition either.
              json.dumps({**event, "quantity": 2**40}).encode(),
              json.dumps({**event, "userId": "poisoner\x00"}).encode(),
              json.dumps({**event, "saleId": 2**40}).encode()]
    producer = kafka.reliable_producer(wired.kafka_bootstrap_servers)
    for topic in (ORDER_EVENTS, INVENTORY_EVENTS):
        for value in poison:
            producer.produce(topic, value, key=marker)
    # A decision for an order nobody ever saved: nothing to update, nothing to block.
    producer.produce(INVENTORY_EVENTS, json.dumps({**event, "type": "inventory.reserved", "availableStock": 0}),
                     key=marker)
    assert producer.flush(10) == 0

    readers = {ORDER_EVENTS: 3, INVENTORY_EVENTS: 2}  # consumer groups of each topic: each puts the poison aside
    deadline, found = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        found = {topic: dead_letters(wired, topic, marker) for topic in readers}
        if all(len(found[t]) >= len(poison) * n for t, n in readers.items()):
            break
    for topic, groups in readers.items():
        for value in poison:
            assert found[topic].count(value) >= groups, (topic, value, found[topic])

    # The consumers kept going: an order placed after the poison is decided.
    placed = httpx.post(f"{wired.gateway_url}/api/orders", json=GOOD, timeout=30)
    assert placed.status_code == 202, placed.text
    assert settle(wired, [placed.json()["orderId"]], timeout=60) is not None, "stuck behind the poison"
    assert httpx.get(f"{wired.gateway_url}/api/orders/{placed.json()['orderId']}").json()["status"] == "CONFIRMED"
    state = invariants(wired, fresh_sale.saleId, [placed.json()["orderId"]])
    assert state.ok and state.confirmed == 1, state.as_dict()


async def order_while_listening(settings, user_id: str, timeout: float = 60) -> tuple[str, dict | None]:
    """Open the buyer's WebSocket, place one order, return its id and the final order_update heard for it."""
    url = settings.gateway_url.replace("http", "ws", 1) + f"/ws?userId={user_id}"
    async with websockets.connect(url, open_timeout=30) as socket, httpx.AsyncClient(timeout=30) as client:
        placed = await client.post(f"{settings.gateway_url}/api/orders",
                                   json={**GOOD, "userId": user_id})
        assert placed.status_code == 202, placed.text
        order_id = placed.json()["orderId"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                message = json.loads(await asyncio.wait_for(socket.recv(), deadline - time.monotonic()))
            except TimeoutError:
                break
            data = message.get("data", {})
            if data.get("orderId") == order_id and data.get("status") in ("CONFIRMED", "CANCELLED"):
                return order_id, data
        return order_id, None


def test_poison_on_notification_events_does_not_silence_the_websocket(stack, wired, fresh_sale):
    producer = kafka.reliable_producer(wired.kafka_bootstrap_servers)
    for partition in range(wired.partitions):  # every gateway reads every partition: poison them all
        for value in (b"\xff\xfe not UTF-8", None, b"[]", b'{"type": "order_update", "data": 5}'):
            producer.produce(NOTIFICATION_EVENTS, value, partition=partition)
    assert producer.flush(10) == 0

    order_id, heard = asyncio.run(order_while_listening(wired, "listening-buyer"))

    assert heard is not None, "the WebSocket said nothing after the poison: the gateway's fan-out died"
    assert heard["status"] == "CONFIRMED" and heard["userId"] == "listening-buyer", heard

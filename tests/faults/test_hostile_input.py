"""Hostile input at the real, running gateway: never a 5xx, and a 4xx at once for what is too big or too deep.

schemathesis generates requests from the gateway's own OpenAPI schema (/openapi.json), valid ones and
ones that break the schema on purpose; half of them name the product on sale, so they reach the order
path and not only the 404 of an unknown product.
"""
import contextlib
import json
import time
from collections import Counter

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, seed, settings, strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from .conftest import SEED, TALLY

EXAMPLES = 100  # per operation and mode: 7 operations and modes that can be generated, 1 to 100 cases each
FAST_S = 2.0


def test_generated_requests_from_the_openapi_schema_never_get_a_5xx(fault_stack):
    fault_stack.reset(stock=100, per_user_limit=1)
    base, product = fault_stack.settings.gateway_url, fault_stack.settings.product_id
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json", timeout=10)
    calls, statuses, server_errors = Counter(), Counter(), []
    session = requests.Session()

    for operation in (result.ok() for result in schema.get_all_operations()):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @seed(SEED)
            @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode), on_sale=st.booleans())
            def send(case, on_sale):
                if on_sale and isinstance(case.body, dict) and "productId" in case.body:
                    case.body["productId"] = product
                if on_sale and "product_id" in (case.path_parameters or {}):
                    case.path_parameters["product_id"] = product
                response = case.call(base_url=base, session=session, timeout=30)
                calls[operation.label] += 1  # noqa: B023 (send() runs in the iteration that defines it)
                statuses[response.status_code] += 1
                TALLY.hostile.update(["requests", "5xx"] if response.status_code >= 500 else ["requests"])
                if response.status_code >= 500:
                    server_errors.append(f"{response.status_code} {response.text[:200]} for {case.as_curl_command()}")

            # Unsatisfiable: nothing in this operation can be made invalid (no parameters, or any string fits)
            with contextlib.suppress(Unsatisfiable):
                send()

    assert sum(calls.values()) >= 500, calls
    assert not server_errors, "\n".join(server_errors[:10])
    assert statuses[202] > 0 and statuses[422] > 0, statuses  # both the order path and the refusals were reached
    assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200


def post(base: str, body: bytes | object, **headers) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = httpx.post(f"{base}/api/orders", content=body, timeout=10,
                          headers={"Content-Type": "application/json", **headers})
    return response, time.monotonic() - start


def chunks(total: int, size: int = 16 * 1024):
    for _ in range(total // size):
        yield b" " * size


HOSTILE = {
    "10,000 brackets deep, never closed (10 KB)": b"[" * 10_000,
    "8,000 deep and well-formed (16,000 bytes)": b"[" * 8_000 + b"]" * 8_000,
    "a userId nested 7,000 deep": b'{"userId": ' + b"[" * 7_000 + b"]" * 7_000 + b', "productId": "P", "quantity": 1}',
    "1 MiB, declared": b"x" * (1 << 20),
    "1 MiB of JSON, one long userId": json.dumps({"userId": "a" * (1 << 20), "productId": "P", "quantity": 1}).encode(),
}


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_bodies_too_deep_or_too_big_get_a_4xx_at_once(fault_stack, body):
    response, took = post(fault_stack.settings.gateway_url, body)
    assert 400 <= response.status_code < 500 and response.json()["error"]["code"], response.text[:300]
    assert took < FAST_S, f"took {took:.2f} s"


def test_a_chunked_body_of_1_mib_is_cut_off_with_413(fault_stack):
    response, took = post(fault_stack.settings.gateway_url, chunks(1 << 20))  # no Content-Length: counted as it comes
    assert response.status_code == 413 and response.json()["error"]["code"] == "BODY_TOO_LARGE", response.text[:300]
    assert took < FAST_S, f"took {took:.2f} s"


def test_after_the_hostile_input_the_next_buyer_is_served(fault_stack):
    sale = fault_stack.reset(stock=1, per_user_limit=1)
    response, _ = post(fault_stack.settings.gateway_url, json.dumps(
        {"userId": "an-ordinary-buyer", "productId": sale.productId, "quantity": 1}))
    assert response.status_code == 202, response.text

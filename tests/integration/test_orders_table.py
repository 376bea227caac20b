"""The orders table as the orders service writes it: a batch's status update finds each row by its key, however
many orders wait.

The drain of issue 25 slowed down as the backlog grew: the batched UPDATE joined every unsettled order (through a
(sale_id, status) index) at PostgreSQL's default random_page_cost of 4, so each batch cost more the more orders
waited. The embedded PostgreSQL runs with random_page_cost=1.1 (stack/embedded.py), and the plan is one primary-key
lookup per order of the batch. Status updates are not HOT: the payment deadline's sweep needs its partial index on
RESERVED rows (services/expiry.py), and an index whose predicate names status blocks HOT for every status change.
"""
import json
import uuid

import pytest

from flashsale.adapters import postgres
from flashsale.services.orders import INSERT_PENDING, MOVE_FORWARD

pytestmark = pytest.mark.broker_free


def plan_nodes(plan: dict) -> list[dict]:
    return [plan, *(node for child in plan.get("Plans", []) for node in plan_nodes(child))]


def test_a_batch_of_status_updates_looks_each_order_up_by_its_key_with_40_000_orders_waiting(wired):
    waiting = [f"backlog-{uuid.uuid4()}" for _ in range(40000)]
    batch = waiting[:500]
    with postgres.connect(wired.database_url) as pg:
        with pg.transaction(force_rollback=True):  # nothing of it stays in the session's database
            pg.execute(INSERT_PENDING, (waiting, [-1] * len(waiting), waiting, ["plan-test"] * len(waiting),
                                        [1] * len(waiting)))
            pg.execute("ANALYZE orders")
            explained = pg.execute("EXPLAIN (FORMAT JSON) " + MOVE_FORWARD,
                                   (batch, ["RESERVED"] * len(batch), [None] * len(batch))).fetchone()[0]
    plan = explained[0]["Plan"] if isinstance(explained, list) else json.loads(explained)[0]["Plan"]
    scans = [(node["Node Type"], node.get("Index Name")) for node in plan_nodes(plan) if "Scan" in node["Node Type"]
             and node.get("Relation Name") == "orders"]
    assert scans and all(index == "orders_pkey" for _, index in scans), scans

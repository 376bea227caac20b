"""The orders table as the orders service writes it: an order's status moves in place (a HOT update)."""
import uuid

import pytest

from flashsale.adapters import postgres
from flashsale.services.orders import INSERT_PENDING, MOVE_FORWARD

pytestmark = pytest.mark.broker_free

HOT_SO_FAR = "SELECT pg_stat_get_xact_tuples_hot_updated('orders'::regclass)"  # this transaction's own count


def test_moving_a_batch_of_orders_forward_updates_rows_in_place_not_through_new_index_entries(wired):
    """No index holds status, and pages keep room: with (sale_id, status) indexed, none of these was HOT."""
    ids = [f"hot-{uuid.uuid4()}" for _ in range(200)]
    with postgres.connect(wired.database_url) as pg:
        transaction = pg.transaction(force_rollback=True)  # nothing of it stays in the session's database
        with transaction:
            pg.execute(INSERT_PENDING, (ids, [-1] * len(ids), ids, ["hot-test"] * len(ids), [1] * len(ids)))
            before = postgres.scalar(pg, HOT_SO_FAR)
            pg.execute(MOVE_FORWARD, (ids, ["RESERVED"] * len(ids), [None] * len(ids)))
            hot = postgres.scalar(pg, HOT_SO_FAR) - before
    assert hot >= len(ids) // 4, f"{hot} of {len(ids)} status updates were HOT"

"""The lesson, as tests: 1,000 buyers, 100 phones, four checkouts, every one paying through the provider."""
from flashsale.harness.checks import invariants, settle
from flashsale.harness.load import run_buyers


def test_event_driven_sells_exactly_the_stock(stack, wired, fresh_sale):
    race = run_buyers("gateway", wired.gateway_url, buyers=1000, progress=False)

    assert race.count(500, 502, 503, 504, 0) == 0, race.statuses()
    assert set(race.statuses()) <= {202, 409}, race.statuses()
    accepted = [b.order_id for b in race.accepted]
    assert settle(wired, accepted, timeout=60) is not None, "orders left PENDING"
    state = invariants(wired, fresh_sale.saleId, accepted)
    assert state.confirmed == 100 and state.confirmedUnits == 100
    assert state.availableStock == 0
    assert state.pending == 0 and state.lost == 0
    assert state.cancelled + race.count(409) == 900
    assert (state.paid, state.chargedTwice) == (100, 0)  # every sale paid once
    assert state.ok, state.as_dict()


def test_naive_shop_oversells(stack, wired, fresh_sale):
    race = run_buyers("naive", wired.shop_url, buyers=1000, progress=False)

    assert race.count(500, 502, 503, 504, 0) == 0, race.statuses()
    assert race.count(201) > 100, f"the naive shop sold only {race.count(201)}: no race happened"


def test_locked_shop_never_oversells(stack, wired, fresh_sale):
    race = run_buyers("locked", wired.shop_url, buyers=1000, progress=False)

    assert race.count(500, 502, 503, 504, 0) == 0, race.statuses()
    assert race.count(201) == 100
    assert race.count(409) == 900


def test_reserve_then_pay_never_oversells(stack, wired, fresh_sale):
    race = run_buyers("reserve-then-pay", wired.shop_url, buyers=1000, progress=False)

    assert race.count(500, 502, 503, 504, 0) == 0, race.statuses()
    assert race.count(201) == 100
    assert race.count(409) == 900

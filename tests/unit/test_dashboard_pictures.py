"""The dashboard's pure parts: the palette, the topology, the lag and cost panels, their one-line summaries."""
import importlib

import psutil
import pytest

from flashsale import events as ev
from flashsale.lab import palette, panels, topology
from flashsale.lab.cost import Cost, per_order_ms
from flashsale.lab.groups import NOT_KNOWN
from flashsale.lab.watch import Rates, event_type

dashboard = importlib.import_module("flashsale.lab.dashboard")  # `flashsale.lab.dashboard` is also a function
UP = {name: True for name in ("gateway", "orders", "inventory", "payments", "notifications", "psp", "kafka",
                              "postgres", "redis")}


def lag_rows(lag: int = 0, owner: str = NOT_KNOWN) -> list[dict]:
    return [{"group": g, "topic": t, "partition": p, "lag": lag, "owner": owner}
            for g, topics in {"orders": [ev.ORDER_EVENTS, ev.PAYMENT_EVENTS], "payments": [ev.INVENTORY_EVENTS]}.items()
            for t in topics for p in range(3)]


def snapshot(**changes) -> dict:
    snap = {"version": 1, "stock": [(0.0, 100), (2.3, 0)], "lag": lag_rows(), "feed": [], "up": dict(UP),
            "counts": {"saleId": 1, "initialStock": 100, "availableStock": 0, "confirmed": 100, "cancelled": 900,
                       "pending": 0, "reserved": 0},
            "pipeline_ms": [100.0, 300.0], "accept_ms": [10.0, 20.0, 30.0], "errors": {}, "rates": {}, "cpu": None}
    return {**snap, **changes}


def test_each_system_and_status_has_one_colour_and_no_two_share_one():
    named = [*palette.SYSTEMS.values(), *palette.STATUSES.values()]
    assert len(set(named)) == len(named)
    assert palette.color("reserve_then_pay") == palette.color("Reserve then pay") == palette.SYSTEMS["reserve-then-pay"]


def test_names_the_palette_does_not_know_get_colours_no_known_name_has_taken():
    chosen = palette.colors(["naive", "mine", "yours"])
    assert chosen[0] == palette.SYSTEMS["naive"] and len(set(chosen)) == 3


def test_a_killed_service_turns_grey_says_down_and_the_arrows_into_it_turn_red():
    pic = topology.picture(snapshot(up={**UP, "orders": False}))
    orders = list(topology.NODES).index("orders")
    assert pic["down"] == ["orders"]
    assert pic["node_colors"][orders] == palette.HEALTH["idle"] and "DOWN" in pic["node_labels"][orders]
    into_orders = [i for i, (_, dst, _, _) in enumerate(topology.EDGES) if dst == "orders"]
    assert into_orders and all(pic["edge_colors"][i] == palette.HEALTH["down"] for i in into_orders)


def test_an_instance_that_still_runs_keeps_its_service_alive():
    assert topology.alive("inventory", {"inventory": False, "inventory.1": True}) is True
    assert topology.alive("buyers", UP) is None  # nobody's process: never called down


def test_each_edge_shows_the_rate_of_what_it_carries_and_each_consumer_its_summed_lag():
    rates = {ev.ORDER_EVENTS: 820.0, ev.ORDER_CREATED: 310.0, ev.NOTIFICATION_EVENTS: 400.0}
    pic = topology.picture(snapshot(rates=rates, lag=lag_rows(lag=5)))
    edge = {(src, dst): label for (src, dst, _, _), label in zip(topology.EDGES, pic["edge_labels"], strict=False)}
    assert edge[("buyers", "gateway")] == "310/s" and edge[(ev.ORDER_EVENTS, "inventory")] == "820/s"
    assert edge[("WebSocket", "buyers")] == "400/s" and edge[("payments", ev.PAYMENT_EVENTS)] == ""
    assert pic["lag"] == {"orders": 30, "payments": 15}
    assert "lag orders 30" in topology.summary(pic, rates).replace(":", "").replace(",", "")


def test_the_lag_panel_never_shows_an_empty_minus_one_to_one_axis():
    bars = panels.lag_bars(lag_rows(lag=0), UP)
    assert bars["range"][0] == 0 and bars["range"][1] >= 1 and bars["note"].startswith("no lag")
    assert panels.lag_bars(lag_rows(lag=40), UP)["range"] == [0, 50.0]


def test_the_lag_panel_groups_partitions_under_their_group_with_short_labels():
    bars = panels.lag_bars(lag_rows(), UP)
    groups, partitions = bars["x"]
    assert groups[:6] == ["orders"] * 6 and partitions[:3] == ["ord<br>0", "ord<br>1", "ord<br>2"]
    assert max(len(line) for p in partitions for line in p.split("<br>")) <= 3  # narrow: 24 bars fit side by side


def test_owners_show_as_the_broker_reports_them():
    assert panels.lag_bars(lag_rows(owner="orders-1"), UP)["text"][0] == "#1"
    assert panels.lag_bars(lag_rows(owner="nobody"), UP)["text"][0] == "–"
    tansu = panels.lag_bars(lag_rows(), UP)
    assert tansu["text"] is None and tansu["owners"] == NOT_KNOWN  # one note, not the same words on every bar


def test_a_down_consumers_lag_bars_turn_red():
    bars = panels.lag_bars(lag_rows(lag=3), {**UP, "payments": False})
    colors = {c for c, g in zip(bars["colors"], bars["x"][0], strict=True) if g == "payments"}
    assert colors == {palette.HEALTH["down"]}


def test_rates_count_events_per_topic_and_per_type_over_the_last_two_seconds():
    rates = Rates(window_s=2)
    for t in (0.0, 0.5, 1.5, 2.5):
        rates.see(ev.ORDER_EVENTS, ev.ORDER_CREATED, t)
    rates.see(ev.NOTIFICATION_EVENTS, None, 2.6)
    assert rates.per_s(3.0) == {ev.ORDER_EVENTS: 1.0, ev.ORDER_CREATED: 1.0, ev.NOTIFICATION_EVENTS: 0.5}
    assert event_type(b'{"type": "order_update", "data": {}}') == "order_update" and event_type(b"\xff") is None


def test_cpu_per_order_is_the_cpu_spent_over_the_orders_settled_in_the_same_seconds():
    samples = [(0.0, {"gateway": 1.0, "kafka": 2.0}, 0), (5.0, {"gateway": 1.2, "kafka": 2.1}, 100)]
    assert per_order_ms(samples) == {"ms": {"gateway": 2.0, "kafka": 1.0, "total": 3.0}, "orders": 100,
                                     "seconds": 5.0}
    assert per_order_ms(samples[:1]) is None and per_order_ms([samples[0], samples[0]]) is None


def test_a_killed_or_restarted_process_never_makes_a_components_cpu_fall():
    readings = {1: iter([5.0, 5.5]), 2: iter([0.3])}

    def read(pid):
        value = next(readings[pid], None)
        if value is None:
            raise psutil.NoSuchProcess(pid)
        return value

    cost = Cost(window_s=5, read=read)
    cost.sample({1: "orders"}, settled=0, now=0)
    cost.sample({1: "orders"}, settled=10, now=1)  # +0.5 s
    cost.sample({1: "orders", 2: "orders"}, settled=20, now=2)  # 1 killed; 2 new: counted from here on
    assert cost.spent == {"orders": 0.5}
    assert cost.per_order()["ms"]["orders"] == 25.0  # 0.5 s over 20 orders


def test_a_new_sale_starts_the_cost_window_again():
    cost = Cost(window_s=5, read=lambda pid: 1.0)
    cost.sample({1: "gateway"}, settled=500, now=0)
    cost.sample({1: "gateway"}, settled=3, now=1)
    assert len(cost.samples) == 1 and cost.per_order() is None


def test_every_panel_has_a_one_line_summary():
    lines = panels.summaries(snapshot(cpu={"ms": {"gateway": 0.5, "kafka": 0.2, "total": 0.7}, "orders": 900,
                                           "seconds": 5.0}))
    assert lines["stock"] == "stock 100→0 of 100 in 2.3 s"
    assert lines["orders"] == "orders: 0 pending, 0 reserved, 100 confirmed, 900 cancelled"
    assert lines["cpu"] == "CPU ms per order: 0.70 (900 orders, 5 s); most in gateway"
    assert all("\n" not in line for line in lines.values())


@pytest.mark.parametrize("changes", [{}, {"up": {**UP, "orders": False}, "lag": lag_rows(lag=7, owner="orders-0"),
                                          "cpu": {"ms": {"gateway": 0.5, "total": 0.5}, "orders": 9, "seconds": 1}}])
def test_the_dashboard_figure_takes_any_snapshot(changes):
    fig = dashboard._figure()
    dashboard.paint(fig, snapshot(**changes))
    lag = next(t for t in fig.data if t.name == "lag")
    assert list(lag.x[0]) == [r["group"] for r in sorted(snapshot(**changes)["lag"],
                                                         key=lambda r: (r["group"], r["topic"], r["partition"]))]
    assert fig.layout.yaxis6.range[0] == 0


def test_an_idle_stack_keeps_its_last_cpu_figure_and_says_it_is_not_live():
    bars = panels.cpu_bars({"ms": {"kafka": 3.0, "total": 3.0}, "orders": 72, "seconds": 5.5, "live": False})
    assert bars["title"] == "CPU ms per order: 3.00 (72 orders, 5.5 s; idle since)"


def test_orders_by_status_never_shows_an_empty_minus_one_to_one_axis():
    fig = dashboard._figure()
    dashboard.paint(fig, snapshot(counts={}))
    assert fig.layout.yaxis3.range[0] == 0 and fig.layout.yaxis3.range[1] >= 1


def test_a_service_not_started_yet_is_grey_and_says_so_while_a_server_the_stack_did_not_start_is_not_down():
    up = {name: ok for name, ok in UP.items() if name not in ("inventory", "redis")}
    pic = topology.picture(snapshot(up=up))
    inventory = list(topology.NODES).index("inventory")
    assert pic["down"] == ["inventory"] and "not started" in pic["node_labels"][inventory]
    assert topology.alive("redis", up) is None and topology.alive("orders", {}) is None


def test_on_three_nodes_the_header_names_each_partitions_leader_and_who_is_out_of_sync():
    rows = [{"topic": "order.events", "partition": 0, "leader": "kafka-2", "replicas": [1, 2, 3], "in sync": [2, 3],
             "out of sync": [1]},
            {"topic": "order.events", "partition": 1, "leader": None, "replicas": [1, 2, 3], "in sync": [1],
             "out of sync": [2, 3]}]
    header = dashboard._header(snapshot(replicas=rows))
    assert ("replicas: order.events p0: leader kafka-2, in sync 2 3, out of sync 1 · p1: leader NONE, in sync 1, "
            "out of sync 2 3") in header
    assert "replicas" not in dashboard._header(snapshot())  # one node: nothing to say


def test_the_latency_panel_names_where_each_clock_starts():
    names = [t.name for t in dashboard._figure().data if t.type == "histogram"]
    assert names == ["accept: click → 202", "pipeline: order.created → decided"]
    line = panels.summaries(snapshot())["latency"]
    assert line.startswith("latency: accept (click → 202) median 20 ms; "
                           "pipeline (order.created → decided) median 200 ms")

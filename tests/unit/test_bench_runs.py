"""bench --runs N: each goal's worst run is reported, and every run keeps its own figures."""
from flashsale.bench import BenchResult, worst


def run(e2e, order_p99, stock_p99, cpu, noop=0.2, idle=(3.0, 300.0, 0), rate=1000, browsers=1000) -> BenchResult:
    systems = ("ceiling", "event_driven", "locked", "naive")
    return BenchResult(
        "kafka", 1000, 5, dict.fromkeys(systems, 100.0), dict.fromkeys(systems, 1.0), dict.fromkeys(systems, 2.0),
        dict.fromkeys(systems, 0), 100.0, rate, 1.0, e2e, True, {"gateway": cpu, "total": cpu}, noop, 30, 60.0,
        {"clients": browsers, "order_update": {"received": 10, "p99_ms": order_p99},
         "stock_update": {"received": 10, "p99_ms": stock_p99}},
        0, 0, goal_p99_e2e_ms=e2e, goal_p99_fanout_ms=max(order_p99, stock_p99), cpu_ms_per_order=cpu,
        idle_cpu_pct=idle[0], idle_cpu_pct_by_component={"tansu": idle[0]}, stack_uss_mib=idle[1],
        per_user_limit_cancelled=idle[2])


def test_each_goal_reports_its_worst_run_even_when_the_worst_runs_differ():
    result = worst([run(900, 40, 129, 2.1), run(7100, 36, 50, 3.3), run(2800, 38, 49, 2.4)]).as_dict()
    assert (result["p99_e2e_ms_at_1000"], result["p99_fanout_ms_at_1000"], result["cpu_ms_per_order"]) == (7100, 129,
                                                                                                           3.3)


def test_every_run_says_whether_its_fan_out_tail_was_the_order_updates_or_the_stock_figures():
    result = worst([run(900, 40, 129, 2.1), run(2800, 131, 49, 2.4)]).as_dict()
    assert [r["p99_fanout_ms_by_kind"] for r in result["runs"]] == [
        {"order_update": 40, "stock_update": 129}, {"order_update": 131, "stock_update": 49}]
    assert [r["cpu_ms_per_noop"] for r in result["runs"]] == [0.2, 0.2]


def test_a_run_without_an_end_to_end_figure_counts_as_the_worst():
    assert worst([run(900, 40, 50, 2.1), run(None, 40, 50, 2.1)]).as_dict()["p99_e2e_ms_at_1000"] == float("inf")


def test_the_last_run_keeps_its_own_figures_beside_the_goals():
    result = worst([run(7100, 40, 50, 3.3), run(900, 36, 49, 2.1)]).as_dict()
    assert (result["p99_e2e_ms"], result["p99_fanout_ms"]) == (900, 49)  # the last run's own
    assert result["cpu_ms_per_order_by_component"]["total"] == 2.1 and result["cpu_ms_per_order"] == 3.3


def test_the_idle_stack_and_the_buyers_report_their_worst_run_too():
    result = worst([run(900, 40, 50, 2.1, idle=(2.5, 310.0, 0)), run(900, 40, 50, 2.1, idle=(4.1, 290.0, 7)),
                    run(900, 40, 50, 2.1, idle=(1.0, 280.0, 0))]).as_dict()
    assert (result["idle_cpu_pct"], result["stack_uss_mib"], result["per_user_limit_cancelled"]) == (4.1, 310.0, 7)
    assert result["buyers_distinct"] is False
    assert [r["idle_cpu_pct"] for r in result["runs"]] == [2.5, 4.1, 1.0]


def test_the_fan_out_goal_is_named_by_its_browsers_and_the_end_to_end_goal_by_its_rate():
    result = worst([run(900, 40, 129, 2.1, rate=400, browsers=1000)]).as_dict()
    assert (result["p99_e2e_ms_at_400"], result["p99_fanout_ms_at_1000"]) == (900, 129)
    assert "p99_fanout_ms_at_400" not in result and "p99_fanout_ms_at_1000" in result["runs"][0]

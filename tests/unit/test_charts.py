"""The notebooks' charts: each prints one line that says what it shows, and uses the palette's colours."""
from flashsale.harness.load import Buyer, Race
from flashsale.harness.races import Outcome
from flashsale.lab import charts, palette


def race(system: str, latency_ms: float, n: int = 100) -> Race:
    return Race(system, [Buyer(f"u{i}", 201 if i < 50 else 409, latency_ms, i / 10_000) for i in range(n)], 0.5)


def test_sold_vs_stock_says_who_oversold_and_uses_each_systems_colour(capsys):
    fig = charts.sold_vs_stock({"naive": Outcome(race("naive", 40), 143, 43, 0.5),
                                "locked": Outcome(race("locked", 40), 100, 0, 0.5)}, stock=100)
    assert capsys.readouterr().out == "naive sold 143 of 100, 43 oversold; locked sold 100 of 100\n"
    assert fig.layout.meta["summary"].startswith("naive sold 143")
    assert list(fig.data[0].marker.color) == [palette.SYSTEMS["naive"], palette.SYSTEMS["locked"]]


def test_latencies_says_each_series_median_and_p99(capsys):
    fig = charts.latencies(naive=race("naive", 20), locked=[100.0] * 10)
    assert capsys.readouterr().out == "naive: p50 20 ms, p99 20 ms (100); locked: p50 100 ms, p99 100 ms (10)\n"
    assert [t.marker.color for t in fig.data] == [palette.SYSTEMS["naive"], palette.SYSTEMS["locked"]]


def test_the_two_clocks_of_an_order_are_named_with_where_each_starts(capsys):
    fig = charts.latencies(accept=race("gateway", 1500), pipeline=[300.0] * 10)
    assert [t.name for t in fig.data] == ["accept: click → 202", "pipeline: order.created → decided"]
    assert capsys.readouterr().out.startswith("accept: click → 202: p50 1,500 ms")
    assert [t.marker.color for t in fig.data] == [palette.SERIES["accept"], palette.SERIES["pipeline"]]


def test_the_race_window_says_how_long_the_first_buyers_were_all_in_flight(capsys):
    charts.race_window(race("naive", 40), n=40)
    assert capsys.readouterr().out == ("naive: of the first 40 buyers 40 were accepted; "
                                       "all 40 requests were open at once for 36 ms\n")


def test_lines_says_where_each_line_starts_and_ends(capsys):
    charts.lines([{"buyers": 100, "p99 ms": 50}, {"buyers": 1000, "p99 ms": 900}], "buyers", "p99 ms", title="Locked")
    assert capsys.readouterr().out == "Locked: p99 ms 50 → 900 as buyers goes 100 → 1,000\n"

"""The demo's report: the table and its reading come first, one colour per system, latency as ECDFs."""
from flashsale.harness.load import Buyer, Race
from flashsale.harness.races import Outcome
from flashsale.lab import palette
from flashsale.report import figure, reading, rows, write_report


def outcome(system: str, sold: int, latency_ms: float, lost: int = 0) -> Outcome:
    buyers = [Buyer(f"u{i}", 202 if i < sold else 409, latency_ms + i, i / 1000) for i in range(200)]
    return Outcome(Race(system, buyers, 1.0), sold, max(0, sold - 100), 1.5, lost, sold, 0, min(sold, 100))


OUTCOMES = {"naive": outcome("naive", 143, 400), "locked": outcome("locked", 100, 3000),
            "event-driven": outcome("gateway", 100, 100)}


def test_the_reading_is_three_sentences_naming_the_oversold_the_fastest_and_the_slowest():
    text = reading(rows(OUTCOMES), 100)
    assert text.count(". ") == 2 and text.endswith(".")
    assert text.startswith("Naive sold 143 phones of 100, 43 too many")
    assert "Event-driven answered 99 % of its buyers within" in text and "locked within" in text
    assert "Only locked and event-driven got everything right" in text


def test_a_system_that_lost_an_order_is_not_called_right():
    text = reading(rows({**OUTCOMES, "event-driven": outcome("gateway", 100, 100, lost=3)}), 100)
    assert "Only locked got everything right" in text


def test_latency_is_one_ecdf_per_system_in_its_own_colour_and_no_histogram():
    fig = figure(OUTCOMES, 100)
    assert not [t for t in fig.data if t.type == "histogram"]
    ecdfs = [t for t in fig.data if t.type == "scatter" and t.xaxis == "x3"]
    assert [t.name for t in ecdfs] == list(OUTCOMES)
    assert [t.line.color for t in ecdfs] == [palette.SYSTEMS[name] for name in OUTCOMES]
    assert ecdfs[0].y[-1] == 1.0


def test_the_report_opens_with_the_table_and_its_reading_before_any_chart(tmp_path):
    path = tmp_path / "report.html"
    write_report(OUTCOMES, 100, path)
    page = path.read_text()
    assert page.index("<table>") < page.index("class='reading'") < page.index("plotly")
    assert palette.SYSTEMS["naive"] in page.split("</table>")[0]  # the table's swatches use the charts' colours

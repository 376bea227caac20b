"""What the lessons, the deck, the glossary, the cheat sheet, the README and the teaching notes say, held against the
code they speak of: counts taken from the code, names that must agree, claims an expert faulted that must not come
back, and predictions a learner commits to before the reveal (issue 23)."""
import ast
import inspect
import re
from pathlib import Path

import nbformat
import pytest

from flashsale.adapters import kafka
from flashsale.lab import panels
from flashsale.services import shop
from flashsale.settings import Settings
from flashsale.stack.control import INFRA, SERVICES

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
EXERCISES = sorted((ROOT / "notebooks" / "exercises").glob("[0-9][0-9]-*.ipynb"))
WORDS = dict(enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                        "eleven", "twelve"]))

pytestmark = pytest.mark.broker_free


def cells(path: Path) -> list:
    generated = ("nav", "contents")
    return [c for c in nbformat.read(path, as_version=4).cells if c.metadata.get("flashsale") not in generated]


def prose(path: Path) -> str:
    """A notebook's markdown, or a text file, with its line breaks as spaces: a phrase may be wrapped anywhere."""
    text = ("\n\n".join(c.source for c in cells(path) if c.cell_type == "markdown") if path.suffix == ".ipynb"
            else path.read_text())
    return " ".join(text.split())


def lesson(number: str) -> Path:
    return next(p for p in LESSONS if p.name.startswith(number))


def title(path: Path) -> str:
    heading = next(line for c in cells(path) if c.cell_type == "markdown" for line in c.source.splitlines()
                   if line.startswith("# "))
    return heading[2:].split(" · ", 1)[1]


# --- counts from the code --------------------------------------------------------------------------------------

def test_notebook_00_counts_and_draws_every_service_the_stack_starts():
    text = prose(lesson("00"))
    assert f"{WORDS[len(SERVICES)]} services of the `flashsale` package" in text
    assert f"{WORDS[len(INFRA)]} servers and {WORDS[len(SERVICES)]} services" in text
    diagram = next(c.source for c in cells(lesson("00")) if "```mermaid" in c.source)
    table = next(c.source for c in cells(lesson("00")) if "| component | what it is |" in c.source)
    for name in SERVICES:
        assert re.search(rf"\b{name}\b", diagram.split("```mermaid")[1]), f"the diagram lacks {name}"
    for name in (*SERVICES, *INFRA):
        assert f"| `{name}` |" in table, f"the component table lacks {name}"


def test_the_deck_counts_the_notebooks_and_exercises_and_names_every_one():
    deck = ROOT / "slides" / "flashsale.ipynb"
    slide = " ".join(next(c.source for c in cells(deck) if c.source.startswith("## Try it yourself")).split())
    assert f"{WORDS[len(LESSONS)]} notebooks and {WORDS[len(EXERCISES)]} exercises" in slide
    for path in [*LESSONS, *EXERCISES]:
        assert title(path).lower() in slide.lower(), f"the deck does not name {path.stem}: {title(path)!r}"


def test_the_readme_counts_the_exercises():
    assert f"{WORDS[len(EXERCISES)].capitalize()} notebooks in `notebooks/exercises/`" in prose(ROOT / "README.md")


def test_notebook_02_gives_the_shops_pool_size_as_the_code_has_it():
    size = re.search(r"async_pool\(settings\.database_url, (\d+), (\d+)\)", inspect.getsource(shop))
    assert size and size[1] == size[2], "the shop's pool is no longer fixed: say what it is in 02"
    assert f"a pool of **{size[1]} database connections**" in prose(lesson("02"))
    assert f"one of the shop's {size[1]} database connections" in prose(ROOT / "README.md")


def test_notebook_05_gives_the_session_timeout_its_members_have():
    member = kafka.member_config(Settings(broker="kafka"), "inventory")  # 05's one node, the classic protocol
    seconds = int(member["session.timeout.ms"]) // 1000
    assert f"the session timeout here is {seconds} s" in "".join(c.source for c in cells(lesson("05")))
    assert f"({seconds} s in this lab's consumers" in prose(lesson("05"))


def test_the_retention_the_lessons_name_is_the_one_the_topics_get():
    hours = int(kafka.TOPIC_CONFIG["retention.ms"]) // 3_600_000
    assert f"this kit's topics keep {hours} hours on Apache Kafka" in prose(lesson("06"))
    assert f"here after {hours} hours on Apache Kafka" in prose(ROOT / "docs" / "glossary.md")


# --- names that must agree -------------------------------------------------------------------------------------

# Each latency of one order, from where to where: the glossary and notebook 03 say it in these words.
LATENCIES = {"accept latency": "from the buyer's click to the `202`",
             "pipeline latency": "from `order.created` in the log to the order's decision",
             "end-to-end latency": "from the buyer's click to the order's decision"}


@pytest.mark.parametrize("name", LATENCIES)
def test_the_glossary_and_notebook_03_define_each_latency_alike(name):
    glossary = prose(ROOT / "docs" / "glossary.md")
    entry = glossary.split(f"**{name}** ·", 1)[1].split("**", 1)[0]
    assert LATENCIES[name] in entry
    assert LATENCIES[name] in prose(lesson("03"))


def test_the_dashboard_names_each_clock_with_where_it_starts_as_the_glossary_does():
    assert panels.SPANS == {"accept": "click → 202", "pipeline": "order.created → decided"}
    assert "order.created" in LATENCIES["pipeline latency"] and "click" in LATENCIES["accept latency"]


# --- claims that were wrong, and must not come back -------------------------------------------------------------

WRONG = {
    "the default of Kafka 4": "KIP-848 is on by default on the broker; clients still default to classic",
    "exactly one owner at a time": "one owner at a time holds in the coordinator's view only",
    "gives each partition to exactly one member": "one owner at a time holds in the coordinator's view only",
    "producer stays silent for": "transaction.timeout.ms counts from the transaction's start",
    "cannot be edited": "retention, compaction and DeleteRecords remove events",
    "That is the whole lab": "07 to 09 come after 06",
    "one key, one order": "it compared two derivations of the same inputs",
    "and so does every read": "followers can serve reads (KIP-392)",
    "writes and reads go to one replica": "followers can serve reads (KIP-392)",
    "five services": "the stack starts seven",
    "seven notebooks": "there are ten",
    "which is kept for 30 s": "a frozen quorum cannot change the ISR at all",
    "the broker down means 503, nothing lost": "a memory broker loses what it held",
    "nothing lost, nothing sold either": "a memory broker loses what it held",
    "or the broker is killed with `kill -9`": "only a durable or replicated broker keeps what it held",
    "or the broker `kill -9`ed": "only a durable or replicated broker keeps what it held",
    "the embedded default) keeps its log in": "the default broker keeps its log (issue 26); --fast forgets",
    "tansu's memory storage, the embedded default": "the default broker keeps its log (issue 26); --fast forgets",
    "`flashsale up --durable` is the first step": "durable is the default (issue 26)",
    "Under `BACKWARD` (the default), a new schema must be able to read data written with the previous one; "
    "`FORWARD`, the reverse": "the producer-first rename needs FORWARD or FULL",
    "The 900 others wait in the same queue": "most wait for one of the shop's 4 connections",
    "accept and end-to-end": "the two clocks start at different moments",
    "end_to_end": "the lab's second clock is the pipeline's",
}
SAID_IN = [*LESSONS, ROOT / "slides" / "flashsale.ipynb", ROOT / "README.md", ROOT / "flashsale/lab/dashboard.py",
           *(ROOT / "docs" / name for name in ("glossary.md", "cheatsheet.md", "teaching.md"))]


@pytest.mark.parametrize("path", SAID_IN, ids=lambda p: p.name)
def test_no_faulted_claim_comes_back(path):
    text = prose(path) if path.suffix != ".ipynb" else " ".join(
        (" ".join(c.source for c in cells(path))).split())
    found = {wrong: why for wrong, why in WRONG.items() if wrong.lower() in text.lower()}
    assert not found, f"{path.name} says again what was wrong: {found}"


# --- predictions a learner commits to ---------------------------------------------------------------------------

PREDICTION = "## What do you expect?"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_every_prediction_is_a_guess_written_before_the_run_and_revealed_after_it(path):
    code_and_text = cells(path)
    asked = [i for i, c in enumerate(code_and_text) if c.cell_type == "markdown" and PREDICTION in c.source]
    for i in asked:
        guess = code_and_text[i + 1]
        assert guess.cell_type == "code", f"{path.stem}: no guess cell after the prediction of cell {i}"
        names = [t.id for node in ast.parse(guess.source).body for t in node.targets]
        assert names and all(n.startswith("guess") for n in names), guess.source
        assert all(isinstance(node.value, ast.Constant) and node.value.value is None
                   for node in ast.parse(guess.source).body), "committed with no guess in it"
        later = "\n".join(c.source for c in code_and_text[i + 2:] if c.cell_type == "code")
        for name in names:
            assert re.search(rf"lab\.reveal\({name},", later), f"{path.stem}: {name} is never revealed"
    if not asked:
        assert "guess" not in "".join(c.source for c in code_and_text if c.cell_type == "code")


def test_the_key_predictions_are_asked():
    wanted = {"02": "sales a second", "04": "The broker is dead", "05": "dead member's partitions go unread",
              "07": "the event names `units`"}
    for number, words in wanted.items():
        asked = [c.source for c in cells(lesson(number)) if c.cell_type == "markdown" and PREDICTION in c.source]
        assert any(words in " ".join(s.split()) for s in asked), f"{number}: no prediction about {words!r}"


@pytest.mark.parametrize("number", ["05", "08"])
def test_the_kafka_lessons_take_apache_kafka_when_it_is_installed_and_say_what_differs_on_tansu(number):
    setup = next(c.source for c in cells(lesson(number)) if "lab.start(" in c.source)
    assert "broker=lab.kafka_if_installed()" in setup
    first = prose(lesson(number)).split("**Goals")[0]
    assert "Apache Kafka** whenever Kafka is installed" in first and "on **tansu**" in first and "differs" in first

"""The checks of the exercise notebooks (`notebooks/exercises/`), one module per exercise.

Each check runs the learner's code against the real servers of the notebook's
own stack, the way the services would run it: concurrently, with redelivery,
with crashes. It prints a line for each property that holds and stops at the
first that does not, with an `AssertionError` that says what is wrong and what
to do about it. A learner's own error (a `NotImplementedError` from an
unsolved task, a SQL error) is left to surface as it is.

Each module lists the rules its task states (`RULES`, in the notebook's words and order), and a failure
names the rule it breaks: `Wrong.rule`, which `flashsale grade` puts in the teacher's table.

    from flashsale.lab.exercises import reservation
    reservation.check(stack, my_script())
"""
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One rule an exercise's task states: its number in the notebook's list, and its words."""
    number: int
    text: str

    def __str__(self) -> str:
        return f"rule {self.number} ({self.text})"


class Wrong(AssertionError):
    """The learner's code runs, but does something the service must not; `rule` is the one it breaks, `step` the
    step of the check that found it (a letter, as the notebook lists the steps), if the check has steps."""

    def __init__(self, message: str, rule: Rule | None = None):
        super().__init__(f"{rule}: {message}" if rule else message)
        self.rule = rule
        self.step: str | None = None


def expect(condition: object, message: str, rule: Rule | None = None) -> None:
    if not condition:
        raise Wrong(message, rule)


def passed(what: str) -> None:
    print(f"✔ {what}")


def run_id() -> str:
    """A fresh prefix for this run's keys, rows and events: a check can be run again and again."""
    return uuid.uuid4().hex[:8]


def short(items, n: int = 3) -> str:
    items = list(items)
    return ", ".join(map(str, items[:n])) + (f" (and {len(items) - n} more)" if len(items) > n else "")


@contextmanager
def step(letter: str, what: str) -> Iterator[None]:
    """One step of a check, as the notebook lists them ("C. each order again"): a failure in it carries its letter,
    for the reveal of the exercise's prediction ("which step will the obvious answer fail?")."""
    try:
        yield
    except Wrong as wrong:
        wrong.step = wrong.step or letter
        raise
    passed(f"{letter}. {what}")


def outcome(check, *args, **kwargs) -> Wrong | None:
    """Run a check and return how it failed (None if it passed): for a reveal, which runs the obvious answer."""
    try:
        check(*args, **kwargs)
    except Wrong as wrong:
        return wrong
    return None

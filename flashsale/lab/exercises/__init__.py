"""The checks of the exercise notebooks (`notebooks/exercises/`), one module per exercise.

Each check runs the learner's code against the real servers of the notebook's
own stack, the way the services would run it: concurrently, with redelivery,
with crashes. It prints a line for each property that holds and stops at the
first that does not, with an `AssertionError` that says what is wrong and what
to do about it. A learner's own error (a `NotImplementedError` from an
unsolved task, a SQL error) is left to surface as it is.

    from flashsale.lab.exercises import reservation
    reservation.check(stack, my_script())
"""
import uuid


class Wrong(AssertionError):
    """The learner's code runs, but does something the service must not."""


def expect(condition: object, message: str) -> None:
    if not condition:
        raise Wrong(message)


def passed(what: str) -> None:
    print(f"✔ {what}")


def run_id() -> str:
    """A fresh prefix for this run's keys, rows and events: a check can be run again and again."""
    return uuid.uuid4().hex[:8]


def short(items, n: int = 3) -> str:
    items = list(items)
    return ", ".join(map(str, items[:n])) + (f" (and {len(items) - n} more)" if len(items) > n else "")

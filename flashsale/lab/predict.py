"""Predictions a learner commits to: the guess is written in a cell before anything runs, the reveal compares.

    guess = predict.guess(None, "ABCDE")      # the learner writes a letter (or a number) in place of None
    ...                                        # the cells that make it happen
    predict.reveal(guess, "C", "the seed's script forgets its decisions")

A guess is a value in the notebook, so it cannot be changed by what runs after it: the reveal says what the
learner guessed, what happened, and why. No guess is allowed too (a reader who only reads): the reveal then just
says what happened.
"""
from collections.abc import Collection


def _same(a, b) -> bool:
    return str(a).strip().upper() == str(b).strip().upper()


def guess(answer, choices: Collection | str | None = None):
    """The learner's guess, checked against the choices the question offers; None while it is not written yet."""
    if answer is None:
        print("No guess yet: write yours in place of None, then run the cell again.")
        return None
    if choices is not None and not any(_same(answer, choice) for choice in choices):
        offered = ", ".join(map(str, choices))
        raise ValueError(f"{answer!r} is not one of the choices ({offered}): write one of them")
    print(f"Your guess: {answer}. Now run on, and see.")
    return answer


def reveal(guessed, happened, why: object = "") -> bool:
    """Compare the guess with what happened, and say why it happened; True if the guess was right."""
    because = f"\n{why}" if str(why) else ""
    if guessed is None:
        print(f"It was {happened}.{because}")
        return False
    right = _same(guessed, happened)
    print(f"You guessed {guessed}; it was {happened}: {'right' if right else 'not this time'}.{because}")
    return right

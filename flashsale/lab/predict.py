"""Predictions a learner commits to: the guess is written in a cell before the run, and compared after it.

    guess = "B"                                      # before the run: a letter of the choices, or a number
    ...                                              # the run
    lab.reveal(guess, "B", f"{sale.sold} sold")      # after it: "You guessed B: right. 100 sold."

A guess left at `None` (as the notebooks are committed, and as nbval runs them) is no error: the reveal says
there was none and gives the answer. A lesson's answer never depends on the broker it runs on; what happened is
the `because`, measured in the run.
"""
import math

NO_GUESS = (None, "", "?")


def reveal(guess, answer, because: str = "", unit: str = "", within: float = 0.25) -> None:
    """Print the verdict: the guess against the answer, and why (`because`)."""
    print(verdict(guess, answer, because, unit, within))


def verdict(guess, answer, because: str = "", unit: str = "", within: float = 0.25) -> str:
    """`answer` a letter ("B") or a number; a number is right within `within` of it (a share: 0.25 is 25 %)."""
    why = f": {because}." if because else "."
    if guess is None or isinstance(guess, str) and guess.strip() in NO_GUESS:
        return f"No guess written (guess = None). The answer: {_said(answer, unit)}{why}"
    if isinstance(answer, str):
        mine = letter(guess)
        if mine is None:
            return f"{guess!r} is not one of the choices (write a letter, as guess = \"B\"). The answer: {answer}{why}"
        right = mine == answer.upper()
        return (f"You guessed {mine}: right{why}" if right else f"You guessed {mine}; it was {answer}{why}")
    mine_number = number(guess)
    if mine_number is None:
        return f"{guess!r} is not a number (write one, as guess = 30). The answer: {_said(answer, unit)}{why}"
    right = math.isclose(mine_number, answer, rel_tol=within, abs_tol=within if answer == 0 else 0.0)
    return (f"You guessed {_said(mine_number, unit)}: right, it was {_said(answer, unit)}{why}" if right else
            f"You guessed {_said(mine_number, unit)}; it was {_said(answer, unit)}{why}")


def letter(guess) -> str | None:
    """"b", " B ", "B.", "B) exactly 100" -> "B"; anything else -> None."""
    text = str(guess).strip().upper()
    if text[:1].isalpha() and (len(text) == 1 or not text[1].isalpha()):
        return text[0]
    return None


def number(guess) -> float | None:
    """30, 30.5, "30", "1,000" -> a float; anything else -> None."""
    if isinstance(guess, bool):
        return None
    try:
        return float(str(guess).replace(",", "").replace("_", ""))
    except ValueError:
        return None


def _said(value, unit: str) -> str:
    if isinstance(value, str):
        return value
    shown = f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:,.1f}"
    return f"{shown} {unit}".strip()

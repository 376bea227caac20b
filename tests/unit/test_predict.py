"""The reveal of a prediction: the learner's guess against the answer, and no error when there is no guess."""
import pytest

from flashsale.lab.predict import letter, verdict


def test_a_right_letter_is_called_right_with_the_reason():
    assert verdict("B", "B", "100 sold") == "You guessed B: right: 100 sold."


@pytest.mark.parametrize("written", ["b", " B ", "B.", "B)", "b) exactly 100", "B - exactly"])
def test_a_letter_is_read_however_the_learner_wrote_it(written):
    assert letter(written) == "B"


@pytest.mark.parametrize("written", ["Be", "", "12", "?"])
def test_what_is_no_letter_is_not_read_as_one(written):
    assert letter(written) is None


def test_a_wrong_letter_names_the_answer():
    assert verdict("c", "D", "the shop sold 1,000") == "You guessed C; it was D: the shop sold 1,000."


@pytest.mark.parametrize("placeholder", [None, "", "?", "  "])
def test_no_guess_is_no_error_and_still_gives_the_answer(placeholder):
    assert verdict(placeholder, "B") == "No guess written (guess = None). The answer: B."


def test_a_number_within_a_quarter_is_right_and_says_what_it_was():
    assert verdict(6, 6.4, unit="s") == "You guessed 6 s: right, it was 6.4 s."
    assert verdict("45", 6.4, "the session timeout", unit="s") == "You guessed 45 s; it was 6.4 s: the session timeout."


def test_a_number_guess_for_zero_must_be_zero():
    assert verdict(0, 0, unit="writes").startswith("You guessed 0 writes: right")
    assert verdict(10, 0, unit="writes") == "You guessed 10 writes; it was 0 writes."


def test_a_guess_of_the_wrong_kind_is_named_and_the_answer_given():
    assert verdict(3, "B") == "3 is not one of the choices (write a letter, as guess = \"B\"). The answer: B."
    assert verdict("many", 75) == "'many' is not a number (write one, as guess = 30). The answer: 75."
    assert verdict(True, 75).startswith("True is not a number")

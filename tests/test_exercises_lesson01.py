"""Lesson 01 self-checks accept the right answers (worked out by hand), give the hint of each slip,
say "not answered yet" for the blank cell, and grade against the module's own parameters."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from qlab.exercises import lesson01 as ex
from qlab.exercises._grading import NOT_ANSWERED

Q25 = (1 / 32, -4.0, 4 - 1 / 32)  # signed Q2.5 worked out by hand: 2^-5, -2^2, 2^2 - 2^-5


def test_tie_rounding_correct_and_printed(capsys: pytest.CaptureFixture[str]) -> None:
    answer = [-2, 4, 4, 0]  # -2.5, 3.5, 4.5, -0.5 to the even neighbour
    assert ex.TIE_VALUES == (-2.5, 3.5, 4.5, -0.5)
    assert ex.grade_tie_rounding(answer, ex.TIE_VALUES).correct
    assert ex.check_tie_rounding(answer) is None
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [([-3, 4, 5, -1], "away from zero"), ([-3, 3, 4, -1], "floor"), ([-2, 4, 5, 0], "ceil"),
     ([-2, 3, 4, 0], "truncated"), ([7, 7, 7, 7], "even one"), ([0, 2], "one rounded value"), (3, "one rounded value"),
     ("0220", "one rounded value"), (torch.tensor(2.0), "one rounded value")],
)
def test_tie_rounding_hints(answer: Any, hint: str) -> None:
    fb = ex.grade_tie_rounding(answer, ex.TIE_VALUES)
    assert not fb.correct and fb.message.startswith("Not quite.") and hint in fb.message


def test_tie_rounding_accepts_a_tensor() -> None:
    assert ex.grade_tie_rounding(torch.tensor([-2.0, 4.0, 4.0, -0.0]), ex.TIE_VALUES).correct


def test_tie_rounding_other_values() -> None:
    assert ex.grade_tie_rounding([4, -4], (3.5, -4.5)).correct
    assert "away from zero" in ex.grade_tie_rounding([4, -5], (3.5, -4.5)).message


@pytest.mark.parametrize(
    ("m", "n", "answer"),
    [(2, 5, Q25), (3, 4, (1 / 16, -8.0, 8 - 1 / 16)), (0, 7, (1 / 128, -1.0, 1 - 1 / 128))],
)
def test_fixed_point_correct(m: int, n: int, answer: tuple[float, float, float]) -> None:
    assert ex.grade_fixed_point_format(answer, m, n).correct


def test_fixed_point_check_uses_the_lessons_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert (ex.FIXED_POINT_M, ex.FIXED_POINT_N) == (2, 5)  # the notebook's prose says Q2.5
    ex.check_fixed_point_format(Q25)
    assert capsys.readouterr().out.startswith("Correct! Q2.5")


def test_fixed_point_check_owns_its_format(capsys: pytest.CaptureFixture[str]) -> None:
    """The check takes only the answer: Q5.2's numbers (m and n swapped) are wrong for Q2.5."""
    q52 = (1 / 4, -32.0, 32 - 1 / 4)
    assert ex.grade_fixed_point_format(q52, 5, 2).correct
    ex.check_fixed_point_format(q52)
    assert capsys.readouterr().out.startswith("Not quite.")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [((2**-6, -4, 4 - 2**-5), "not 2^-6"), ((32.0, -4, 4 - 2**-5), "inverse"),
     ((2**-5, -4 + 2**-5, 4 - 2**-5), "one more negative code"), ((2**-5, -4, 4), "one step below"),
     ((2**-5, -2, 2 - 2**-5), "WITHOUT the sign bit"), ((2**-5, -4, 3.0), "largest code"),
     ((-4, 4 - 2**-5, 2**-5), "wrong order"), ((2**-5, 4 - 2**-5, -4), "wrong order"),
     ((2**-5, -4), "three numbers"), (0.03125, "three numbers")],
)
def test_fixed_point_hints(answer: Any, hint: str) -> None:
    fb = ex.grade_fixed_point_format(answer, m=2, n=5)
    assert not fb.correct and hint in fb.message


def test_tie_bias_prediction_is_measured() -> None:
    assert ex.BIAS_TIES == tuple(k + 0.5 for k in range(8))
    assert ex.unbiased_on_ties(ex.BIAS_TIES) == "half_even"  # +-0.5 alternate for half_even; +0.5 each for half_away
    assert ex.unbiased_on_ties((-0.5, 0.5)) == "both"  # symmetric ties: half_away's errors cancel too
    assert ex.unbiased_on_ties((0.5, 2.5)) == "neither"  # both even-below ties: half_even rounds both down


def test_tie_bias_prediction_feedback(capsys: pytest.CaptureFixture[str]) -> None:
    ex.check_tie_bias_prediction("half_even")
    assert capsys.readouterr().out.startswith("Correct!")
    assert ex.grade_tie_bias_prediction(" Half_Even ", ex.BIAS_TIES).correct
    for wrong, hint in [("both", "always rounds"), ("half_away", "every positive tie UP"), ("neither", "cancel exactly")]:
        fb = ex.grade_tie_bias_prediction(wrong, ex.BIAS_TIES)
        assert not fb.correct and hint in fb.message
    assert "Not one of the options" in ex.grade_tie_bias_prediction("torch", ex.BIAS_TIES).message


@pytest.mark.parametrize("check", [ex.check_tie_rounding, ex.check_fixed_point_format, ex.check_tie_bias_prediction])
def test_blank_cell_is_not_answered_yet(check: Any, capsys: pytest.CaptureFixture[str]) -> None:
    check(None)
    assert capsys.readouterr().out.strip() == NOT_ANSWERED


def test_fixed_point_blank_parts_are_not_answered_yet() -> None:
    assert ex.grade_fixed_point_format((None, None, None), 2, 5).message == NOT_ANSWERED


@pytest.mark.parametrize("check", [ex.check_tie_rounding, ex.check_fixed_point_format])
def test_partly_filled_answer_is_not_answered_yet(check: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """A None left among the numbers is "not answered yet", never a TypeError."""
    check([-2, 4, 4, None] if check is ex.check_tie_rounding else (2**-5, None, 3.96875))
    assert capsys.readouterr().out.strip() == NOT_ANSWERED


@pytest.mark.parametrize(
    ("grade", "answer"),
    [(lambda a: ex.grade_tie_rounding(a, ex.TIE_VALUES), [-2, 4, "4", 0]),
     (lambda a: ex.grade_fixed_point_format(a, 2, 5), ("0.03125", -4, 3.96875))],
)
def test_text_among_the_numbers_asks_for_a_number(grade: Any, answer: Any) -> None:
    fb = grade(answer)
    assert not fb.correct and fb.message.startswith("Give a number")


@pytest.mark.parametrize("answer", [(0.0313, -4, 3.969), (0.031, -4, 3.97), (2**-5, -4, 3.95)])
def test_fixed_point_too_few_digits_is_told_so(answer: tuple[float, float, float]) -> None:
    """Rounded by hand to two or three digits: the idea is right, the check says "more digits"
    (it used to say "what is one step of q worth?")."""
    fb = ex.grade_fixed_point_format(answer, 2, 5)
    assert not fb.correct and "too few" in fb.message


def test_fixed_point_four_significant_digits_pass() -> None:
    assert ex.grade_fixed_point_format((0.03125, -4.000, 3.969), 2, 5).correct


def test_fixed_point_slip_near_the_answer_keeps_its_hint() -> None:
    """-4 + 2^-5 lies within 1% of -4, but it is the "one more negative code" slip, not a rounding."""
    fb = ex.grade_fixed_point_format((2**-5, -3.97, 4 - 2**-5), 2, 5)
    assert "one more negative code" in fb.message


def test_fixed_point_fallback_reads_an_8_bit_word() -> None:
    fb = ex.grade_fixed_point_format((2**-5, -3.0, 4 - 2**-5), 2, 5)
    assert "the signed 8-bit word is -128" in fb.message and "a 8-bit" not in fb.message

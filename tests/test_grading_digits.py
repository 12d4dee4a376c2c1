"""grade_digits: a number rounded to too few digits is told so, not told that its idea is wrong;
known slips keep their own hint even when they lie within 1%; text and None never raise."""

from __future__ import annotations

from qlab.exercises._grading import NEAR_TOL, NOT_ANSWERED, grade_digits

SLIPS = [(0.0315, "the slip")]  # 0.8% from 0.03125: inside NEAR_TOL, so it must win over "more digits"


def digits(answer: object):
    return grade_digits(answer, 2**-5, "why", SLIPS, "the fallback", "2**-5")


def test_right_and_four_significant_digits_pass() -> None:
    assert digits(0.03125).correct and digits(0.03125).message == "Correct! why"
    assert digits(0.03125 * (1 + 0.9e-3)).correct  # REL_TOL is 0.1%


def test_too_few_digits_get_their_own_hint() -> None:
    for rounded in (0.0313, 0.031, 0.0312):
        fb = digits(rounded)
        assert not fb.correct and "too few" in fb.message and "2**-5" in fb.message


def test_slip_inside_the_near_tolerance_keeps_its_hint() -> None:
    assert NEAR_TOL == 1e-2
    assert digits(0.0315).message == "Not quite. the slip"


def test_far_answer_gets_the_fallback() -> None:
    assert digits(0.03).message == "Not quite. the fallback"  # 4% off: not a rounding of 2^-5


def test_none_and_text_never_raise() -> None:
    assert digits(None).message == NOT_ANSWERED
    fb = digits("0.03125")
    assert not fb.correct and fb.message.startswith("Give a number")

"""Lesson 02 self-checks accept hand-computed answers, give the hint of each slip, say "not
answered yet" for the blank cell, and grade against the module's own parameters."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from qlab.exercises import lesson02 as ex
from qlab.exercises._grading import NOT_ANSWERED

AFFINE = (2.6 / 255, 59)  # (max - min) / 255; -round(-0.6 / scale) = round(58.85) = 59
UNROUNDED = 0.6 * 255 / 2.6  # -min / scale = 58.846...: the zero-point before rounding


def test_affine_qparams_correct_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    assert (ex.AFFINE_RANGE, ex.AFFINE_BITS) == ((-0.6, 2.0), 8)
    fb = ex.grade_affine_qparams(AFFINE, -0.6, 2.0, 8)
    assert fb.correct and "code 59" in fb.message
    ex.check_affine_qparams(AFFINE)
    assert capsys.readouterr().out.startswith("Correct!")


def test_affine_qparams_rounded_by_hand() -> None:
    """A scale written with 4 significant digits (0.01020), a float zero-point and a tensor pass."""
    assert ex.grade_affine_qparams((0.01020, 59.0), -0.6, 2.0, 8).correct
    assert ex.grade_affine_qparams(torch.tensor([2.6 / 255, 59.0]), -0.6, 2.0, 8).correct


def test_affine_exercise_needs_the_zero_point_rounded(capsys: pytest.CaptureFixture[str]) -> None:
    """The exercise's -min / scale is not a whole number, so forgetting round() fails (with the old
    range [-0.5, 2] it was exactly 51.0 and passed)."""
    lo, hi = ex.AFFINE_RANGE
    assert not (-lo * (2**ex.AFFINE_BITS - 1) / (hi - lo)).is_integer()
    ex.check_affine_qparams((2.6 / 255, UNROUNDED))
    assert "INTEGER" in capsys.readouterr().out


def test_affine_scale_with_too_few_digits_is_told_so() -> None:
    fb = ex.grade_affine_qparams((0.0101, 59), -0.6, 2.0, 8)  # 0.9% off: a rounding, not a slip
    assert not fb.correct and "too few" in fb.message
    assert "number of STEPS" in ex.grade_affine_qparams((2.6 / 256, 59), -0.6, 2.0, 8).message  # 0.4% off, a slip


def test_affine_qparams_other_range_by_hand() -> None:
    assert ex.grade_affine_qparams((4 / 255, 64), -1.0, 3.0, 8).correct  # round(63.75) = 64
    assert ex.grade_affine_qparams((1.0 / 15, 0), 0.0, 1.0, 4).correct


def test_affine_check_owns_its_range(capsys: pytest.CaptureFixture[str]) -> None:
    ex.check_affine_qparams((4 / 255, 64))  # right for [-1, 3], not for the exercise's [-0.6, 2]
    assert capsys.readouterr().out.startswith("Not quite.")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [((2.6 / 127, 59), "2x too large"), ((2.6 / 256, 59), "number of STEPS"), ((255 / 2.6, 59), "inverted"),
     ((2.6 / 255, -59), "sign of your zero-point"), ((2.6 / 255, UNROUNDED), "INTEGER code"),
     ((2.6 / 255, 58.5), "integer code"), ((2.6 / 255, 58), "NEAREST integer"), ((2.6 / 255, 0), "cannot sit at code 0"),
     ((0.5, 59), "scale = (max - min)"), ((0.01, 59), "scale = (max - min)"),
     ((59, 2.6 / 255), "swapped"), ((2.6 / 255,), "two numbers"), (0.0102, "two numbers"), ((None, 59), "two numbers"),
     (torch.tensor(0.0102), "two numbers"), (("0.0102", 59), "Give a number"), ((2.6 / 255, "59"), "Give a number")],
)
def test_affine_qparams_hints(answer: Any, hint: str) -> None:
    fb = ex.grade_affine_qparams(answer, -0.6, 2.0, 8)
    assert not fb.correct and hint in fb.message


def test_affine_qparams_unrounded_zero_point() -> None:
    scale = 4 / 255
    fb = ex.grade_affine_qparams((scale, 1.0 / scale), -1.0, 3.0, 8)  # 63.75: real 0 off the grid
    assert not fb.correct and "INTEGER" in fb.message


def test_symmetric_scale_correct_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    assert (ex.SYMMETRIC_AMAX, ex.SYMMETRIC_BITS) == (2.54, 4)
    assert ex.grade_symmetric_scale(2.54 / 127, 2.54, 8).correct
    assert ex.grade_symmetric_scale(1.0 / 7, 1.0, 4).correct
    ex.check_symmetric_scale(0.363)  # 2.54 / 7 = 0.362857, written with 3 significant digits
    assert capsys.readouterr().out.startswith("Correct!")


def test_symmetric_check_owns_its_bits(capsys: pytest.CaptureFixture[str]) -> None:
    ex.check_symmetric_scale(2.54 / 127)  # right for 8 bits, not for the exercise's 4
    assert capsys.readouterr().out.startswith("Not quite.")


@pytest.mark.parametrize(
    ("scale", "hint"),
    [(2.54 / 127.5, "amax / 127.5 here"), (2.54 / 128, "2^(b-1);"), (2.54 / 255, "HALF of the codes"), (1.0, "Symmetric: zero_point = 0")],
)
def test_symmetric_scale_hints(scale: float, hint: str) -> None:
    fb = ex.grade_symmetric_scale(scale, 2.54, 8)
    assert not fb.correct and hint in fb.message


@pytest.mark.parametrize(
    ("scale", "hint"),
    [(2.54 / 7.5, "amax / 7.5 here"), (2.54 / 8, "2^(b-1);"), (2.54 / 15, "HALF of the codes"),
     (0.36, "too few"), (0.3, "Symmetric: zero_point = 0"), ("0.3629", "Give a number"), ("abc", "Give a number")],
)
def test_symmetric_scale_hints_at_the_exercises_4_bits(scale: Any, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    """torch's 4-bit scale amax / 7.5 (6.7% smaller) and 2.54 / 15 are told apart; text asks for a number."""
    ex.check_symmetric_scale(scale)
    out = capsys.readouterr().out
    assert not out.startswith("Correct!") and hint in out


def test_zero_prediction_is_measured() -> None:
    assert (ex.ZERO_RANGE, ex.ZERO_BITS) == ((-1.0, 3.0), 8)
    assert ex.zero_on_anchored_grid(-1.0, 3.0, 8) == pytest.approx(-1.0 + 64 * 4 / 255, rel=1e-4)  # -min/s = 63.75 -> k = 64
    assert ex.zero_on_anchored_grid(-0.1, 1.0, 8) == pytest.approx(-0.1 + 23 * 1.1 / 255, rel=1e-3)  # -min/s = 23.18 -> k = 23
    assert ex.grade_zero_prediction("exactly 0", -1.0, 254.0, 8).correct  # -min / s = 1: 0 is a grid point
    assert ex.grade_zero_prediction("a small negative number", -0.1, 1.0, 8).correct


def test_zero_prediction_feedback(capsys: pytest.CaptureFixture[str]) -> None:
    ex.check_zero_prediction("a small positive number")
    assert capsys.readouterr().out.startswith("Correct!")
    for wrong, hint in [("exactly 0", "whole-number"), ("a small negative number", "nearest to 0")]:
        fb = ex.grade_zero_prediction(wrong, -1.0, 3.0, 8)
        assert not fb.correct and hint in fb.message and "63.75" in fb.message
    assert "Not one of the options" in ex.grade_zero_prediction(0.0039, -1.0, 3.0, 8).message


@pytest.mark.parametrize("check", [ex.check_affine_qparams, ex.check_symmetric_scale, ex.check_zero_prediction])
def test_blank_cell_is_not_answered_yet(check: Any, capsys: pytest.CaptureFixture[str]) -> None:
    check(None)
    assert capsys.readouterr().out.strip() == NOT_ANSWERED

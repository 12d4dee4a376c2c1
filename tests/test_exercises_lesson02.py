"""Lesson 02 self-checks accept hand-computed answers and give the hint of each slip."""

from __future__ import annotations

import pytest

from qlab.exercises import lesson02 as ex


def test_affine_qparams_correct_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    assert (ex.AFFINE_RANGE, ex.AFFINE_BITS) == ((-0.5, 2.0), 8)
    scale, zp = 2.5 / 255, 51  # (max - min) / 255; -round(-0.5 / scale) = round(51.0)
    fb = ex.grade_affine_qparams(scale, zp, -0.5, 2.0, 8)
    assert fb.correct and "code 51" in fb.message
    ex.check_affine_qparams(scale, zp)
    assert capsys.readouterr().out.startswith("Correct!")


def test_affine_qparams_other_range_by_hand() -> None:
    assert ex.grade_affine_qparams(4 / 255, 64, -1.0, 3.0, 8).correct  # round(63.75) = 64
    assert ex.grade_affine_qparams(1.0 / 15, 0, 0.0, 1.0, 4).correct


@pytest.mark.parametrize(
    ("scale", "zero_point", "hint"),
    [(2.5 / 127, 51, "2x too large"), (2.5 / 256, 51, "number of STEPS"), (255 / 2.5, 51, "inverted"),
     (2.5 / 255, -51, "sign of your zero-point"),
     (2.5 / 255, 51.5, "integer code"), (2.5 / 255, 0, "cannot sit at code 0"), (0.5, 51, "scale = (max - min)")],
)
def test_affine_qparams_hints(scale: float, zero_point: float, hint: str) -> None:
    fb = ex.grade_affine_qparams(scale, zero_point, -0.5, 2.0, 8)
    assert not fb.correct and hint in fb.message


def test_affine_qparams_unrounded_zero_point() -> None:
    scale = 4 / 255
    fb = ex.grade_affine_qparams(scale, 1.0 / scale, -1.0, 3.0, 8)  # 63.75: real 0 off the grid
    assert not fb.correct and "INTEGER" in fb.message


def test_symmetric_scale_correct_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    assert (ex.SYMMETRIC_AMAX, ex.SYMMETRIC_BITS) == (2.54, 8)
    assert ex.grade_symmetric_scale(2.54 / 127, 2.54, 8).correct
    assert ex.grade_symmetric_scale(1.0 / 7, 1.0, 4).correct
    ex.check_symmetric_scale(0.02)
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize(
    ("scale", "hint"),
    [(2.54 / 127.5, "torch's convention"), (2.54 / 128, "2^(b-1);"), (2.54 / 255, "HALF of the codes"), (1.0, "Symmetric: zero_point = 0")],
)
def test_symmetric_scale_hints(scale: float, hint: str) -> None:
    fb = ex.grade_symmetric_scale(scale, 2.54, 8)
    assert not fb.correct and hint in fb.message

"""Lesson 01 self-checks accept the right answers (worked out by hand) and give the hint of each slip."""

from __future__ import annotations

import pytest

from qlab.exercises import lesson01 as ex


def test_tie_rounding_correct_and_printed(capsys: pytest.CaptureFixture[str]) -> None:
    answer = [0, 2, 2, 0]  # 0.5, 1.5, 2.5, -0.5 to the even neighbour
    assert ex.TIE_VALUES == (0.5, 1.5, 2.5, -0.5)
    assert ex.grade_tie_rounding(answer, ex.TIE_VALUES).correct
    assert ex.check_tie_rounding(answer) is None
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [([1, 2, 3, -1], "away from zero"), ([0, 1, 2, -1], "floor"), ([1, 2, 3, 0], "ceil"),
     ([0, 1, 2, 0], "truncated"), ([7, 7, 7, 7], "even one"), ([0, 2], "one rounded value")],
)
def test_tie_rounding_hints(answer: list[int], hint: str) -> None:
    fb = ex.grade_tie_rounding(answer, ex.TIE_VALUES)
    assert not fb.correct and fb.message.startswith("Not quite.") and hint in fb.message


def test_tie_rounding_other_values() -> None:
    assert ex.grade_tie_rounding([4, -4], (3.5, -4.5)).correct
    assert "away from zero" in ex.grade_tie_rounding([4, -5], (3.5, -4.5)).message


@pytest.mark.parametrize(
    ("m", "n", "resolution", "lo", "hi"),
    [(2, 5, 1 / 32, -4.0, 4 - 1 / 32), (3, 4, 1 / 16, -8.0, 8 - 1 / 16), (0, 7, 1 / 128, -1.0, 1 - 1 / 128)],
)
def test_fixed_point_correct(m: int, n: int, resolution: float, lo: float, hi: float) -> None:
    assert ex.grade_fixed_point_format(resolution, lo, hi, m, n).correct


def test_fixed_point_check_uses_the_lessons_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert (ex.FIXED_POINT_M, ex.FIXED_POINT_N) == (2, 5)  # the notebook's prose says Q2.5
    ex.check_fixed_point_format(1 / 32, -4.0, 4 - 1 / 32)
    assert capsys.readouterr().out.startswith("Correct! Q2.5")


@pytest.mark.parametrize(
    ("resolution", "min_value", "max_value", "hint"),
    [(2**-6, -4, 4 - 2**-5, "not 2^-6"), (32.0, -4, 4 - 2**-5, "inverse"),
     (2**-5, -4 + 2**-5, 4 - 2**-5, "one more negative code"), (2**-5, -4, 4, "one step below"),
     (2**-5, -2, 2 - 2**-5, "WITHOUT the sign bit"), (2**-5, -4, 3.0, "largest code")],
)
def test_fixed_point_hints(resolution: float, min_value: float, max_value: float, hint: str) -> None:
    fb = ex.grade_fixed_point_format(resolution, min_value, max_value, m=2, n=5)
    assert not fb.correct and hint in fb.message

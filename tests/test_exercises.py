"""Self-checks accept the right answers (computed by qlab) and give the specific hint for each slip."""

from __future__ import annotations

import pytest

from qlab import exercises as ex
from qlab.affine import qparams_from_range
from qlab.fixed_point import fixed_point_format


def test_tie_rounding_correct_and_printed(capsys: pytest.CaptureFixture[str]) -> None:
    answer = [round(v) for v in ex.TIE_VALUES]  # Python's round() is half-to-even too
    assert ex.grade_tie_rounding(answer).correct
    assert ex.check_tie_rounding(answer) is None
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [([1, 2, 3, -1], "away from zero"), ([0, 1, 2, -1], "floor"), ([1, 2, 3, 0], "ceil"),
     ([0, 1, 2, 0], "truncated"), ([7, 7, 7, 7], "even one"), ([0, 2], "one rounded value")],
)
def test_tie_rounding_hints(answer: list[int], hint: str) -> None:
    fb = ex.grade_tie_rounding(answer)
    assert not fb.correct and fb.message.startswith("Not quite.") and hint in fb.message


@pytest.mark.parametrize(("m", "n"), [(2, 5), (3, 4), (0, 7)])
def test_fixed_point_correct(m: int, n: int) -> None:
    fmt = fixed_point_format(m, n)
    assert ex.grade_fixed_point_format(fmt.resolution, fmt.min_value, fmt.max_value, m, n).correct


@pytest.mark.parametrize(
    ("resolution", "min_value", "max_value", "hint"),
    [(2**-6, -4, 4 - 2**-5, "not 2^-6"), (32.0, -4, 4 - 2**-5, "inverse"),
     (2**-5, -4 + 2**-5, 4 - 2**-5, "one more negative code"), (2**-5, -4, 4, "one step below"),
     (2**-5, -2, 2 - 2**-5, "WITHOUT the sign bit"), (2**-5, -4, 3.0, "largest code")],
)
def test_fixed_point_hints(resolution: float, min_value: float, max_value: float, hint: str) -> None:
    fb = ex.grade_fixed_point_format(resolution, min_value, max_value, m=2, n=5)
    assert not fb.correct and hint in fb.message


def test_affine_qparams_correct_against_qlab() -> None:
    scale, zp = qparams_from_range(-0.5, 2.0, 8, signed=False)
    fb = ex.grade_affine_qparams(scale.item(), zp.item(), -0.5, 2.0, 8)
    assert fb.correct and f"code {zp.item()}" in fb.message


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
    scale = qparams_from_range(-1.0, 3.0, 8, signed=False)[0].item()
    fb = ex.grade_affine_qparams(scale, 1.0 / scale, -1.0, 3.0, 8)  # 63.75: real 0 off the grid
    assert not fb.correct and "INTEGER" in fb.message


def test_symmetric_scale_correct_against_qlab() -> None:
    scale = qparams_from_range(-2.54, 2.54, 8, signed=True, symmetric=True)[0].item()
    assert ex.grade_symmetric_scale(scale).correct


@pytest.mark.parametrize(
    ("scale", "hint"),
    [(2.54 / 127.5, "torch's convention"), (2.54 / 128, "2^(b-1);"), (2.54 / 255, "HALF of the codes"), (1.0, "Symmetric: zero_point = 0")],
)
def test_symmetric_scale_hints(scale: float, hint: str) -> None:
    fb = ex.grade_symmetric_scale(scale)
    assert not fb.correct and hint in fb.message

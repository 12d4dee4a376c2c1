"""Lesson 03 self-checks against SQNR computed with torch's own fake quantization."""

from __future__ import annotations

import math

import pytest
import torch

from qlab.exercises import lesson03 as ex
from qlab.lesson_tensors import bell_weights


def reference_sqnr(x: torch.Tensor, bits: int) -> float:
    """Symmetric min/max SQNR via torch.fake_quantize_per_tensor_affine (narrow codes, z = 0)."""
    qmax = 2 ** (bits - 1) - 1
    x_hat = torch.fake_quantize_per_tensor_affine(x, float(x.abs().max()) / qmax, 0, -qmax, qmax)
    return 10 * math.log10(float((x.double() ** 2).sum() / ((x - x_hat).double() ** 2).sum()))


@pytest.fixture(scope="module")
def gauss() -> torch.Tensor:
    return 0.1 * torch.randn(20_000, generator=torch.Generator().manual_seed(0))


def test_sqnr_prediction_correct_and_hints() -> None:
    s4 = 13.6
    assert ex.grade_sqnr_prediction(s4 + 4 * 20 * math.log10(2), s4, 4, 8).correct
    cases = [(s4 + 4 * 3.0103, "AMPLITUDE"), (2 * s4, "Decibels add"), (s4 + 6.0206, "one extra bit"),
             (4 * 6.0206, "only the gain"), (0.0, "20 log10(2) dB for each")]
    for value, hint in cases:
        fb = ex.grade_sqnr_prediction(value, s4, 4, 8)
        assert not fb.correct and hint in fb.message, (hint, fb.message)


def test_sqnr_prediction_check_measures_the_lesson_weights(capsys: pytest.CaptureFixture[str]) -> None:
    measured = reference_sqnr(bell_weights(), ex.PREDICT_FROM_BITS)
    ex.check_sqnr_prediction(measured + (ex.PREDICT_TO_BITS - ex.PREDICT_FROM_BITS) * 20 * math.log10(2))
    assert capsys.readouterr().out.startswith("Correct!")
    ex.check_sqnr_prediction(measured)
    assert capsys.readouterr().out.startswith("Not quite.")


def test_bits_for_sqnr_correct_and_hints(gauss: torch.Tensor) -> None:
    sqnr = {b: reference_sqnr(gauss, b) for b in range(2, 17)}
    expected = next(b for b, s in sqnr.items() if s >= 30.0)
    assert sqnr[expected - 1] < 30.0 <= sqnr[expected]
    assert ex.grade_bits_for_sqnr(expected, gauss, 30.0).correct
    naive = math.ceil(30 / 6.0206)
    assert naive < expected - 1, "bell-shaped data need more bits than the uniform rule says"
    cases = [(naive, "UNIFORM"), (expected - 1, "still below"), (expected + 1, "one bit fewer"), (16, "smallest that reaches")]
    for value, hint in cases:
        fb = ex.grade_bits_for_sqnr(value, gauss, 30.0)
        assert not fb.correct and hint in fb.message, (hint, fb.message)


def test_bits_for_sqnr_check_uses_the_lesson_weights(capsys: pytest.CaptureFixture[str]) -> None:
    w = bell_weights()
    expected = next(b for b in range(2, 17) if reference_sqnr(w, b) >= ex.TARGET_DB)
    ex.check_bits_for_sqnr(expected)
    assert capsys.readouterr().out.startswith(f"Correct! {expected} bits give")


def test_bits_for_sqnr_unreachable_target(gauss: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="target_db"):
        ex.grade_bits_for_sqnr(16, gauss, 500.0)

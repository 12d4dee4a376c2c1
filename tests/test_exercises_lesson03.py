"""Lesson 03 self-checks against SQNR computed with torch's own fake quantization."""

from __future__ import annotations

import math

import pytest
import torch

from qlab.exercises import lesson03 as ex
from qlab.lesson_tensors import bell_weights, tail_activations


def reference_sqnr(x: torch.Tensor, bits: int) -> float:
    """Symmetric min/max SQNR via torch.fake_quantize_per_tensor_affine (narrow codes, z = 0)."""
    qmax = 2 ** (bits - 1) - 1
    x_hat = torch.fake_quantize_per_tensor_affine(x, float(x.abs().max()) / qmax, 0, -qmax, qmax)
    return 10 * math.log10(float((x.double() ** 2).sum() / ((x - x_hat).double() ** 2).sum()))


MEASURED_8 = 38.8
"""A measured SQNR at 8 bits for the unit tests of exercise 1's feedback."""


@pytest.fixture(scope="module")
def gauss() -> torch.Tensor:
    return 0.1 * torch.randn(20_000, generator=torch.Generator().manual_seed(0))


def test_sqnr_prediction_correct_and_hints() -> None:
    s4 = 13.6
    assert ex.grade_sqnr_prediction(s4 + 4 * 20 * math.log10(2), s4, 4, 8, MEASURED_8).correct
    cases = [(s4 + 4 * 3.0103, "AMPLITUDE"), (2 * s4, "Decibels add"), (s4 + 6.0206, "one extra bit"),
             (4 * 6.0206, "only the gain"), (0.0, "20 log10(2) dB for each")]
    for value, hint in cases:
        fb = ex.grade_sqnr_prediction(value, s4, 4, 8, MEASURED_8)
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


def test_sqnr_prediction_accepts_the_rule_of_thumb() -> None:
    """13.63 + 4 x 6 = 37.63 (the round 6 dB per bit) passes where the exact answer is 37.71;
    the tolerance is the rule's own error, so a value just beyond it still fails."""
    s4 = 13.63
    exact = s4 + 4 * 20 * math.log10(2)
    tol = ex.prediction_tolerance_db(4, 8)
    assert 4 * 0.0206 < tol < 0.2
    for answer in (s4 + 4 * 6, 13.6 + 4 * 6, round(exact, 1)):
        assert ex.grade_sqnr_prediction(answer, s4, 4, 8, MEASURED_8).correct, answer
    assert not ex.grade_sqnr_prediction(exact - 1.05 * tol, s4, 4, 8, MEASURED_8).correct
    assert not ex.grade_sqnr_prediction(s4 + 4 * 3, s4, 4, 8, MEASURED_8).correct, "the 3 dB/bit slip with round numbers"


def test_checks_take_only_the_answer(capsys: pytest.CaptureFixture[str]) -> None:
    """The checks grade against the lesson's own constants: an extra argument cannot change the
    grading (it is a TypeError), and the gain alone gets its hint."""
    with pytest.raises(TypeError):
        ex.check_sqnr_prediction(24.08, 0.0)  # type: ignore[call-arg]
    ex.check_sqnr_prediction(4 * 20 * math.log10(2))
    assert "only the gain" in capsys.readouterr().out
    with pytest.raises(TypeError):
        ex.check_bits_for_sqnr(7, 30.0)  # type: ignore[call-arg]


@pytest.mark.parametrize("check", [ex.check_sqnr_prediction, ex.check_bits_for_sqnr, ex.check_activations_prediction])
def test_blank_answer_is_not_answered_yet(check, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    check(None)
    assert capsys.readouterr().out.startswith("Not answered yet")


def test_activations_prediction_follows_the_measurement() -> None:
    higher = ex.grade_activations_prediction("higher", 40.0, 38.8, 35.1)
    assert higher.correct and "exact zeros" in higher.message
    lower = ex.grade_activations_prediction("lower", 40.0, 38.8, 35.1)
    assert not lower.correct and "peak-to-RMS" in lower.message
    assert ex.grade_activations_prediction(" LOWER ", 37.0, 38.8, 35.1).correct
    assert not ex.grade_activations_prediction("higher", 37.0, 38.8, 35.1).correct
    assert "Not one of the options" in ex.grade_activations_prediction("same", 40.0, 38.8, 35.1).message


def test_activations_prediction_check_measures_the_lesson_tensors(capsys: pytest.CaptureFixture[str]) -> None:
    acts = tail_activations()
    qmax = 2**ex.COMPARE_BITS - 1
    scale = float(acts.max() - acts.min()) / qmax
    zero = -round(float(acts.min()) / scale)
    x_hat = torch.fake_quantize_per_tensor_affine(acts, scale, zero, 0, qmax)
    acts_db = 10 * math.log10(float((acts.double() ** 2).sum() / ((acts - x_hat).double() ** 2).sum()))
    expected = "higher" if acts_db > reference_sqnr(bell_weights(), ex.COMPARE_BITS) else "lower"
    ex.check_activations_prediction(expected)
    assert capsys.readouterr().out.startswith("Correct!")


def test_sqnr_prediction_feedback_compares_with_the_measurement(capsys: pytest.CaptureFixture[str]) -> None:
    """The "Correct!" message gives the value measured at 8 bits and why it beats the 6.02 dB rule: the
    narrow grid has 2^b - 2 steps, 14 at 4 bits and 254 at 8 bits, a gain of 20 log10(254 / 14) = 25.17 dB."""
    fb = ex.grade_sqnr_prediction(13.63 + 4 * 20 * math.log10(2), 13.63, 4, 8, MEASURED_8)
    assert fb.correct and "measures 38.80 dB, 1.1 dB more" in fb.message
    assert "254/14 = 18.1x rather than 16x" in fb.message and "25.17 dB instead of 24.08 dB" in fb.message
    measured = reference_sqnr(bell_weights(), ex.PREDICT_TO_BITS)
    ex.check_sqnr_prediction(reference_sqnr(bell_weights(), ex.PREDICT_FROM_BITS) + 4 * 6)
    assert f"measures {measured:.2f} dB" in capsys.readouterr().out


@pytest.mark.parametrize("answer", ["37.7", " 37.7 ", b"37.7", {"sqnr": 37.7}, "seven"])
def test_sqnr_prediction_text_answer_asks_for_a_number(answer: object) -> None:
    fb = ex.grade_sqnr_prediction(answer, 13.63, 4, 8, MEASURED_8)  # type: ignore[arg-type]
    assert not fb.correct and fb.message.startswith("Give a number")


@pytest.mark.parametrize("answer", ["7", "seven", ["7"]])
def test_bits_for_sqnr_text_answer_asks_for_a_number(gauss: torch.Tensor, answer: object) -> None:
    fb = ex.grade_bits_for_sqnr(answer, gauss, 30.0)  # type: ignore[arg-type]
    assert not fb.correct and fb.message.startswith("Give a number")


def test_checks_print_give_a_number_for_text(capsys: pytest.CaptureFixture[str]) -> None:
    ex.check_sqnr_prediction("37.7")  # type: ignore[arg-type]
    ex.check_bits_for_sqnr("7")  # type: ignore[arg-type]
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and all(line.startswith("Give a number, not the text") for line in out)


def test_bits_for_sqnr_answer_is_not_in_the_section_2_table() -> None:
    """Regression: at 30 dB the answer (7 bits) was a row of the lesson's 2-to-8-bit table; the target
    must need more than 8 bits, and the uniform rule must miss it."""
    sqnr_8 = reference_sqnr(bell_weights(), 8)
    assert ex.TARGET_DB > sqnr_8
    fb = ex.grade_bits_for_sqnr(math.ceil(ex.TARGET_DB / 6.0206), bell_weights(), ex.TARGET_DB)
    assert not fb.correct and "UNIFORM" in fb.message

"""Lesson 06 self-checks: model size counted by hand from the layer shapes, accuracy drop evaluated once."""

from __future__ import annotations

import pytest
from torch import nn

from qlab import evaluation
from qlab.data import calibration_subset
from qlab.exercises import lesson06 as ex
from qlab.models import load_pretrained
from qlab.ptq import quantize_model


def hand_size(model: str, bits: int) -> tuple[int, int, int, int]:
    """(weight bytes, bias count, scale count, fp32 bytes) of the Linear/Conv2d layers of ``model``."""
    layers = [m for m in load_pretrained(model).modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    weights = sum(-(-layer.weight.numel() * bits // 8) for layer in layers)
    biases = sum(layer.bias.numel() for layer in layers)
    scales = sum(layer.weight.shape[0] for layer in layers)
    fp32 = 4 * sum(layer.weight.numel() + layer.bias.numel() for layer in layers)
    return weights, biases, scales, fp32


def test_model_size_correct_and_hints(capsys: pytest.CaptureFixture[str]) -> None:
    assert (ex.SIZE_MODEL, ex.SIZE_BITS) == ("mlp", 4)
    weights, biases, scales, fp32 = hand_size("mlp", 4)
    answer = weights + 4 * biases + 4 * scales
    fb = ex.grade_model_size(answer, "mlp", 4)
    assert fb.correct and f"{answer} bytes against {fp32} for FP32" in fb.message
    ex.check_model_size(answer)
    assert capsys.readouterr().out.startswith("Correct!")
    assert biases == scales == 394, "the mlp: one bias and one scale per output channel"
    left_out = "You left out the 32-bit biases or the 32-bit per-channel scales (394 of each here)."
    cases = [(answer - 4 * scales, left_out), (weights + 4 * scales, left_out), (weights + 4 * biases, left_out),
             (weights + biases // 2 + 4 * scales, "stay 32-bit"),
             (fp32 // 8, "ignores the 32-bit"), (8 * answer, "in bytes"), (1, "Sum over layers")]
    for value, hint in cases:
        fb = ex.grade_model_size(value, "mlp", 4)
        assert not fb.correct and hint in fb.message, (hint, fb.message)


def test_accuracy_drop_correct_hints_and_noise(capsys: pytest.CaptureFixture[str]) -> None:
    net = load_pretrained("depthwise")
    fp32 = evaluation.evaluate(net)
    images = calibration_subset()
    drop = 100 * (fp32 - evaluation.evaluate(quantize_model(net, 8, 8, "per_tensor", calib_data=images)))
    other = 100 * (fp32 - evaluation.evaluate(quantize_model(net, 8, 8, "per_channel", calib_data=images)))
    fb = ex.grade_accuracy_drop(drop, "depthwise", "per_tensor")
    noise = 100 * (fp32 * (1 - fp32) / 10_000) ** 0.5
    assert fb.correct and f"±{noise:.2f} points" in fb.message
    assert ("standard errors" in fb.message) == (drop > noise), "a drop within one standard error is called a tie"
    ex.check_accuracy_drop(drop)
    assert capsys.readouterr().out.startswith("Correct!")
    for value, hint in [(drop / 100, "POINTS"), (-drop, "sign is flipped"), (drop / fp32, "relative"), (other, "per_channel"), (50.0, "subtract")]:
        fb = ex.grade_accuracy_drop(value, "depthwise", "per_tensor")
        assert not fb.correct and hint in fb.message, (hint, fb.message)
    # swapped exercise parameters: the other granularity's drop is graded, not a crash on a model name
    assert ex.grade_accuracy_drop(other, "depthwise", "per_channel").correct


def test_blank_answers_are_not_answered_yet(capsys: pytest.CaptureFixture[str]) -> None:
    for check in (ex.check_model_size, ex.check_accuracy_drop):
        check(None)
        assert capsys.readouterr().out.startswith("Not answered yet"), check.__name__


def test_text_answers_ask_for_a_number(capsys: pytest.CaptureFixture[str]) -> None:
    for check, answer in [(ex.check_model_size, "120528"), (ex.check_accuracy_drop, "0.31")]:
        check(answer)
        assert capsys.readouterr().out.startswith("Give a number, not text"), check.__name__


def test_drop_verdict_follows_the_stated_rule() -> None:
    """Within one standard error: a tie; up to two: on the edge; beyond: clear."""
    assert "a tie with FP32" in ex.drop_verdict(0.30, 0.30)
    assert "a tie with FP32" in ex.drop_verdict(-0.2, 0.30)
    edge = ex.drop_verdict(0.31, 0.30)
    assert edge.startswith("1.0 standard errors (±0.30 points)") and "on the edge" in edge
    assert "on the edge" in ex.drop_verdict(0.60, 0.30)
    clear = ex.drop_verdict(0.61, 0.30)
    assert clear.startswith("2.0 standard errors") and "clearly more" in clear
    assert ex.grade_calibrator_prediction(None, {"minmax": 0.45, "mse": 0.76}).message.startswith("Not answered yet")


def test_calibrator_prediction_grades_the_measured_winner() -> None:
    accuracy = {"minmax": 0.4528, "percentile": 0.3482, "mse": 0.7618, "entropy": 0.5281}
    assert ex.grade_calibrator_prediction(" MSE", accuracy).correct
    wrong = ex.grade_calibrator_prediction("entropy", accuracy)
    assert not wrong.correct and "entropy reaches 52.81%, mse 76.18%" in wrong.message
    histogram = ex.grade_calibrator_prediction("histogram", {**accuracy, "histogram": 0.5337})
    assert not histogram.correct and "histogram reaches 53.37%, mse 76.18%. histogram trims the range greedily" in histogram.message
    assert "Not one of the options" in ex.grade_calibrator_prediction("kl", accuracy).message
    with pytest.raises(ValueError, match="no single winner"):
        ex.grade_calibrator_prediction("mse", {"minmax": 0.901, "mse": 0.902})


def test_calibrator_prediction_check_runs_every_calibrator(capsys: pytest.CaptureFixture[str]) -> None:
    net = load_pretrained("depthwise")
    images = calibration_subset()
    accuracy = {c: evaluation.evaluate(quantize_model(net, 8, 4, calibrator=c, calib_data=images)) for c in ("minmax", "mse")}
    assert accuracy["mse"] > accuracy["minmax"] + 0.1, "on the depthwise net at A4 the error-minimising range wins by far"
    ex.check_calibrator_prediction("mse")
    assert capsys.readouterr().out.startswith("Correct!")


def test_model_size_is_compared_exactly() -> None:
    # mlp, 4-bit per-channel weights: 120528 bytes (hand sum in the notebook); adding an 8-byte
    # activation scale/zero-point per layer (3 layers) is a different, wrong model: 120552.
    assert ex.grade_model_size(120528, "mlp", 4).correct
    fb = ex.grade_model_size(120552, "mlp", 4)
    assert not fb.correct and "activations stay float" in fb.message
    assert not ex.grade_model_size(120529, "mlp", 4).correct

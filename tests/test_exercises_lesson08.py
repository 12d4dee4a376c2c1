"""Lesson 08 self-checks: right answers (hand-computed) pass, every hinted slip gets its hint,
swapped arguments and blank (None) answers are handled, checks grade against the module's own
parameters, and the speed prediction follows the committed results."""

from __future__ import annotations

import pytest

from qlab.exercises import lesson08 as ex
from qlab.notebook import load_results


def gm(m0, shift):
    return ex.grade_quantized_multiplier(m0, shift, 0.0086)


def gb(code):
    return ex.grade_bias_code(code, 0.37, 0.02, 0.0031)


def gf(n):
    return ex.grade_max_fan_in(n, 24, 8, 4)


def test_module_parameters_are_the_ones_graded_here():
    assert ex.MULTIPLIER == 0.0086 and (ex.BIAS, ex.S_IN, ex.S_W) == (0.37, 0.02, 0.0031)
    assert (ex.ACC_BITS, ex.ACT_BITS, ex.WEIGHT_BITS) == (24, 8, 4)


def test_quantized_multiplier():
    # 0.0086 = 0.5504 * 2^-6; 0.5504 * 2147483648 = 1181974999.86 -> 1181975000
    assert gm(1181975000, -6).correct
    assert "sign of the shift" in gm(1181975000, 6).message
    assert "normalising" in gm(round(0.0086 * 2**31), 0).message
    assert "[2^30, 2^31)" in gm(round(0.5504 * 2**30), -6).message
    assert "truncating" in gm(1181974999, -6).message
    assert "frexp exponent" in gm(1181975000, -37).message  # the -31 counted twice
    assert not gm(1, 2).correct


def test_quantized_multiplier_swapped_and_blank():
    assert "swapped" in gm(-6, 1181975000).message
    for m0, shift in ((None, None), (None, -6), (1181975000, None)):
        assert gm(m0, shift).message.startswith("Not answered yet")


def test_bias_code():
    assert gb(5968).correct  # 0.37 / (0.02 * 0.0031) = 5967.74
    assert "weight grid" in gb(round(0.37 / 0.0031)).message  # 119
    for code in (18, 19):  # 0.37 / 0.02 = 18.5: either way of breaking the tie
        assert "input grid" in gb(code).message
    assert "truncating" in gb(5967).message
    assert ex.grade_bias_code(5968, 0.37, 0.0031, 0.02).correct, "the two scales enter as a product: order does not matter"
    assert gb(None).message.startswith("Not answered yet")


def test_max_fan_in():
    # 24-bit accumulator, uint8 activations, int4 weights: (2^23 - 1) // (255 * 8) = 8388607 // 2040 = 4112
    assert gf(4112).correct
    assert ex.grade_max_fan_in(1, 16, 8, 8).correct  # int16: 32767 // 32640 = 1
    assert "safe but not the largest" in gf(4096).message  # the powers-of-two rule: 2^23 / 2^11
    assert "safe but not the largest" in gf(4095).message  # (2^23 - 1) // 2^11: same slip, with the signed limit
    assert "unsigned" in gf(8388607 // (128 * 8)).message  # 8191
    assert "code -8" in gf(8388607 // (255 * 7)).message  # 4699
    assert "not 2^24" in gf(2**24 // 2040).message  # 8224
    assert not gf(4111).correct
    assert gf(None).message.startswith("Not answered yet")


def test_speed_prediction_follows_the_measured_speed_ups():
    assert ex.grade_speed_prediction("slower in both", {"torch": 0.67, "onnxruntime": 0.39}).correct
    assert ex.grade_speed_prediction("Faster in both ", {"torch": 1.2, "onnxruntime": 1.1}).correct
    assert ex.grade_speed_prediction("faster in one only", {"torch": 1.2, "onnxruntime": 0.9}).correct
    wrong = ex.grade_speed_prediction("faster in both", {"torch": 0.67, "onnxruntime": 0.39})
    assert not wrong.correct and "0.39x" in wrong.message and "overhead" in wrong.message
    assert "Not one of the options" in ex.grade_speed_prediction("yes", {"torch": 0.5}).message
    assert ex.grade_speed_prediction(None, {"torch": 0.5}).message.startswith("Not answered yet")


def test_speed_up_reads_the_results_file():
    speed = load_results("int8_speed")
    runs = speed["results"]["mlp"]["runs"]
    assert ex.speed_up(speed, "mlp", "torch") == runs["torch fp32|1"]["p50_ms"] / runs["torch int8|1"]["p50_ms"]


@pytest.mark.parametrize("check, args", [
    (ex.check_quantized_multiplier, (1181975000, -6)),
    (ex.check_bias_code, (5968,)),
    (ex.check_max_fan_in, (4112,)),
])
def test_checks_grade_against_the_module_parameters(check, args, capsys):
    check(*args)
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize("check, blank", [
    (ex.check_quantized_multiplier, (None, None)),
    (ex.check_bias_code, (None,)),
    (ex.check_max_fan_in, (None,)),
    (ex.check_speed_prediction, (None,)),
])
def test_checks_accept_a_blank_answer(check, blank, capsys):
    check(*blank)
    assert capsys.readouterr().out.startswith("Not answered yet")


def test_check_speed_prediction_uses_the_committed_results(capsys):
    speed = load_results("int8_speed")
    speedups = {e: ex.speed_up(speed, ex.SPEED_MODEL, e) for e in ex.SPEED_ENGINES}
    expected = next(o for o in ex.SPEED_OPTIONS if ex.grade_speed_prediction(o, speedups).correct)
    ex.check_speed_prediction(expected)
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize("check, args", [
    (ex.check_quantized_multiplier, ("1181975000", -6)),
    (ex.check_quantized_multiplier, (1181975000, "-6")),
    (ex.check_bias_code, ("5968",)),
    (ex.check_max_fan_in, ("4112",)),
])
def test_text_answers_are_told_to_give_numbers(check, args, capsys):
    """Regression: a string answer used to raise TypeError inside torch.as_tensor."""
    check(*args)
    assert capsys.readouterr().out.startswith("Give a number")
